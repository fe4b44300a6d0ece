//! PrefPalette's view: each community's attention over the attributes (left) beside its true
//! attribute weights (right, where the scenario knows them), a row per community, and Spearman's
//! ρ between the two. A community that weighs humour most should attend to humour most: the
//! claim test asks ρ ≥ 0.7 for every community.

use yew::prelude::*;

use crate::compute::profiles::Profiles;
use crate::plot::coord;

/// The heatmaps, or the note saying why there are none.
pub fn profiles_view(profiles: Option<&Profiles>, note: &str) -> Html {
    let Some(p) = profiles else {
        return html! { <p class="caption" data-testid="profiles-note">{ note.to_string() }</p> };
    };
    let a = p.attributes.len();
    let (cell, label_w, gap, head) = (34.0, 84.0, 26.0, 74.0);
    let has_truth = p.rows.iter().any(|r| !r.truth.is_empty());
    let blocks = if has_truth { 2.0 } else { 1.0 };
    let w = label_w + blocks * a as f64 * cell + gap + 60.0;
    let h = head + p.rows.len() as f64 * cell + 8.0;
    let x0 = |block: usize, j: usize| label_w + block as f64 * (a as f64 * cell + gap) + j as f64 * cell;
    // Each row shaded by its own largest value: attention sums to 1 and weights have their own
    // scale, and the claim is about the order within a row.
    let cells = |block: usize, y: f64, values: &[f64]| {
        let top = values.iter().cloned().fold(1e-12, f64::max);
        values
            .iter()
            .enumerate()
            .map(|(j, v)| {
                let opacity = (v / top).clamp(0.0, 1.0);
                html! {
                    <rect class="profile-cell" x={coord(x0(block, j) + 1.0)} y={coord(y + 1.0)} width={coord(cell - 2.0)} height={coord(cell - 2.0)}
                        fill-opacity={format!("{opacity:.3}")}><title>{ format!("{}: {v:.3}", p.attributes[j]) }</title></rect>
                }
            })
            .collect::<Html>()
    };
    html! {
        <figure class="profiles">
            <svg viewBox={format!("0 0 {w} {h}")} class="chart" data-testid="profiles-chart" data-step={p.step.to_string()} role="img"
                aria-label="each community's attention over the attributes beside its true attribute weights">
                <text x={coord(x0(0, 0))} y="14">{ "learnt attention" }</text>
                if has_truth { <text x={coord(x0(1, 0))} y="14">{ "true weights" }</text> }
                <text x={coord(w - 56.0)} y="14">{ "ρ" }</text>
                { for (0..if has_truth { 2 } else { 1 }).flat_map(|b| p.attributes.iter().enumerate().map(move |(j, name)| (b, j, name.clone()))).map(|(b, j, name)| {
                    let (x, y) = (x0(b, j) + cell / 2.0, head - 6.0);
                    html! { <text class="tick" transform={format!("translate({},{}) rotate(-50)", coord(x), coord(y))}>{ name }</text> }
                }) }
                { for p.rows.iter().enumerate().map(|(i, r)| {
                    let y = head + i as f64 * cell;
                    let rho = r.rho.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into());
                    html! {
                        <g data-context={r.context.clone()} data-rho={r.rho.map(|v| v.to_string())}>
                            <text x="4" y={coord(y + cell / 2.0 + 4.0)}>{ r.context.clone() }</text>
                            { cells(0, y, &r.attention) }
                            if !r.truth.is_empty() { { cells(1, y, &r.truth) } }
                            <text x={coord(w - 56.0)} y={coord(y + cell / 2.0 + 4.0)}>{ rho }</text>
                        </g>
                    }
                }) }
            </svg>
            <figcaption class="caption">{ format!("After step {}: darker is more weight, each row against its own largest; ρ is Spearman's between a community's attention and its true weights.", p.step) }</figcaption>
        </figure>
    }
}

//! The GPM embedding view: each response's preference embedding, one 2-D plot per block.
//!
//! GPM scores s(y_i ≻ y_j) = Σ_l ⟨R e_i,l, e_j,l⟩ with R the quarter turn, so within a block y_i beats
//! y_j when e_j lies counter-clockwise of e_i by less than half a turn: a cyclic preference is
//! embeddings going round the origin. Hovering (or focusing) a response shows its preference
//! probabilities against a few others; the table shows the whole matrix P_ij = σ(s_ij / τ) of those.


use yew::prelude::*;

use crate::compute::embedding::Embeddings;
use crate::by_ptr::ByPtr;
use crate::plot::{coord, scale};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub embeddings: Option<ByPtr<Embeddings>>,
    pub note: String,
    /// Item colours of the data picture (by index), when the scenario has one.
    pub colours: Vec<String>,
}

#[function_component(EmbeddingView)]
pub fn embedding_view(props: &Props) -> Html {
    let hovered = use_state(|| None::<usize>);
    let Some(emb) = props.embeddings.as_ref().map(|e| e.0.clone()) else {
        return html! { <p class="caption" data-testid="gpm-note">{ props.note.clone() }</p> };
    };
    let size = 240.0;
    let extent = emb.points.iter().flat_map(|p| p.iter().map(|v| v.abs() as f64)).fold(1e-6, f64::max) * 1.1;
    let px = |v: f32| scale(v as f64, (-extent, extent), (0.0, size));
    let py = |v: f32| scale(v as f64, (-extent, extent), (size, 0.0));
    let colour = |i: usize| props.colours.get(i).cloned().unwrap_or_else(|| "#5d6473".into());
    let blocks = (0..emb.k).map(|b| {
        html! {
            <figure class="block">
                <svg class="embedding" viewBox={format!("0 0 {size} {size}")} role="img" aria-label={format!("block {} of the preference embeddings", b + 1)}>
                    <line class="axis-faint" x1={coord(size / 2.0)} x2={coord(size / 2.0)} y1="0" y2={coord(size)} />
                    <line class="axis-faint" y1={coord(size / 2.0)} y2={coord(size / 2.0)} x1="0" x2={coord(size)} />
                    // The matrix's responses last, so they sit on top and take the pointer.
                    { for (0..emb.n()).filter(|i| !emb.matrix.contains(i)).chain(emb.matrix.iter().copied()).map(|i| {
                        let (x, y) = (px(emb.points[i][2 * b]), py(emb.points[i][2 * b + 1]));
                        let on_enter = { let h = hovered.clone(); Callback::from(move |_| h.set(Some(i))) };
                        let on_focus = { let h = hovered.clone(); Callback::from(move |_: FocusEvent| h.set(Some(i))) };
                        let in_matrix = emb.matrix.contains(&i);
                        html! {
                            <g class={classes!("emb", (*hovered == Some(i)).then_some("hovered"))} onmouseenter={on_enter} onfocus={on_focus}
                                tabindex={if in_matrix && b == 0 { "0" } else { "-1" }} data-testid={(b == 0).then(|| format!("gpm-point-{i}"))}>
                                <line class="spoke" x1={coord(size / 2.0)} y1={coord(size / 2.0)} x2={coord(x)} y2={coord(y)} stroke={colour(i)} />
                                <circle cx={coord(x)} cy={coord(y)} r={if in_matrix { "5" } else { "3" }} fill={colour(i)} class={classes!(in_matrix.then_some("matrix-item"))}>
                                    <title>{ emb.labels[i].clone() }</title>
                                </circle>
                            </g>
                        }
                    }) }
                </svg>
                <figcaption>{ format!("block {} (coordinates {} and {})", b + 1, 2 * b + 1, 2 * b + 2) }</figcaption>
            </figure>
        }
    });
    let hover_row = hovered.map(|i| {
        html! {
            <p class="caption" data-testid="gpm-hover-row">
                { format!("P({} ≻ ·): ", emb.labels[i]) }
                { for emb.matrix.iter().map(|&j| html! { <span class="prob" data-item={j.to_string()}>{ format!("{} {:.2}  ", emb.labels[j], emb.p(i, j)) }</span> }) }
            </p>
        }
    });
    html! {
        <>
            <p class="desc">{ "Each response's GPM preference embedding, one plot per 2-D block, coloured as in the data plot. Within a block a response beats those lying less than half a turn counter-clockwise of it, so a cycle (rock–paper–scissors) shows as responses going round the origin, once — no scalar reward can do that. A vector's length scales its scores (free length is the default; tick “normalise” for the paper's unit circle). Hover or focus a large point for its preference probabilities; the table is P(row ≻ column) = σ(s/τ) for eight responses, ordered by angle." }</p>
            <div class="embedding-body">
                { for blocks }
                <table class="matrix" data-testid="gpm-matrix">
                    <thead><tr><th>{ "P(row ≻ col)" }</th>{ for emb.matrix.iter().map(|&j| html! { <th>{ emb.labels[j].clone() }</th> }) }</tr></thead>
                    <tbody>
                        { for emb.matrix.iter().map(|&i| html! {
                            <tr class={classes!((*hovered == Some(i)).then_some("hovered"))} data-item={i.to_string()}>
                                <th>{ emb.labels[i].clone() }</th>
                                { for emb.matrix.iter().map(|&j| {
                                    let p = emb.p(i, j);
                                    // Blue for row preferred, orange for column preferred.
                                    let shade = if p >= 0.5 { format!("rgba(47,95,208,{:.2})", (p - 0.5) * 1.6) } else { format!("rgba(224,118,26,{:.2})", (0.5 - p) * 1.6) };
                                    html! { <td style={format!("background:{shade}")} data-p={format!("{p:.6}")}>{ format!("{p:.2}") }</td> }
                                }) }
                            </tr>
                        }) }
                    </tbody>
                </table>
            </div>
            { for hover_row }
        </>
    }
}

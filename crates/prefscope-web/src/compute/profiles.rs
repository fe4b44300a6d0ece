//! PrefPalette's view: each community's attention over the attributes under the
//! attribute-attention model, beside the community's true attribute weights where the data is
//! the `communities` scenario (whose weights are known).

use std::rc::Rc;

use prefscope_core::reward::attributes::profiles as core_profiles;
use prefscope_core::reward::loss::spearman;
use prefscope_core::reward::scenarios::communities::{COMMUNITIES, WEIGHTS};
use prefscope_core::{PairDataset, PreferenceModel};
use serde::{Deserialize, Serialize};

use crate::backend::{AnyModel, on_model};

/// One community's row.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProfileRow {
    pub context: String,
    /// Attention per attribute (the model's softmax over them: sums to 1).
    pub attention: Vec<f64>,
    /// The community's true attribute weights; empty where the data does not know them.
    pub truth: Vec<f64>,
    /// Spearman's ρ between the attention and the true weights, where those are known.
    pub rho: Option<f64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profiles {
    pub attributes: Vec<String>,
    pub rows: Vec<ProfileRow>,
    pub step: usize,
}

/// Every community's profile under the latest weights.
pub async fn profiles(model: AnyModel, ds: Rc<PairDataset>, step: usize) -> Result<Profiles, String> {
    let found = on_model!(&model, |m, device| {
        let PreferenceModel::AttributeAttention(a) = m else {
            return Err("this view shows the attribute-attention model's per-community attention (PrefPalette): pick that model".to_string());
        };
        core_profiles(a, &ds, device).await.map_err(|e| e.to_string())?
    });
    let Some(first) = found.first() else {
        return Err("the data has no contexts (communities) to profile".to_string());
    };
    let attributes = first.attention.iter().map(|(n, _)| n.clone()).collect();
    let rows = found
        .iter()
        .map(|p| {
            let attention: Vec<f64> = p.attention.iter().map(|a| a.1).collect();
            let truth = COMMUNITIES.iter().position(|&c| c == p.context).map(|c| WEIGHTS[c].to_vec()).filter(|w| w.len() == attention.len()).unwrap_or_default();
            let rho = (!truth.is_empty()).then(|| spearman(&attention, &truth));
            ProfileRow { context: p.context.clone(), attention, truth, rho }
        })
        .collect();
    Ok(Profiles { attributes, rows, step })
}

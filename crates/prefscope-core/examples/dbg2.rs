use burn::backend::{Autodiff, NdArray};
use prefscope_core::*;
fn main() {
    let cfg = RunConfig::new(data::ScenarioKind::CyclicAbcd, model::ModelKind::Gpm);
    let mut t = Trainer::<Autodiff<NdArray<f32>>>::new(cfg, &Default::default()).unwrap();
    for _ in 0..3 {
        if let PreferenceModel::Gpm(g) = t.model() { println!("tau {} norm {}", g.tau, g.normalize); 
          let x = burn::tensor::Tensor::<Autodiff<NdArray<f32>>, 2>::eye(4, &Default::default());
          println!("{}", g.embed(x).inner()); }
        pollster::block_on(t.step()).unwrap();
    }
}

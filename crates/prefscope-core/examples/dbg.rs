use burn::backend::{Autodiff, NdArray};
use prefscope_core::*;
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut cfg = RunConfig::new(data::ScenarioKind::parse(&args[1]).unwrap(), model::ModelKind::parse(&args[2]).unwrap());
    if let Some(lr) = args.get(3) { cfg.train.lr = lr.parse().unwrap(); }
    if args.get(4).is_some() { cfg.model.normalize = false; }
    if let Some(s) = args.get(5) { cfg.seed = s.parse().unwrap(); }
    let mut t = Trainer::<Autodiff<NdArray<f32>>>::new(cfg, &Default::default()).unwrap();
    let t0 = std::time::Instant::now();
    while !t.is_done() {
        let m = pollster::block_on(t.step()).unwrap();
        if m.eval.is_some() || m.step < 8 { println!("{:?}", m); }
    }
    println!("{:?}", t0.elapsed());
}

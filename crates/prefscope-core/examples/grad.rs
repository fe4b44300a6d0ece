use burn::backend::{Autodiff, NdArray};
use burn::tensor::{Tensor, TensorData};
use prefscope_core::loss::*;
type B = Autodiff<NdArray<f64>>;
fn main() {
    let d = Default::default();
    let c = Tensor::<B, 2>::from_data(TensorData::new(vec![0.6f64, 0.8, 0.1, 0.2], [2, 2]), &d).require_grad();
    let r = Tensor::<B, 2>::from_data(TensorData::new(vec![1.0f64, 0.0, 0.3, -0.4], [2, 2]), &d).require_grad();
    let s = gpm_score(c.clone(), r.clone(), None);
    println!("s = {}", s.clone().inner());
    let g = s.sum().backward();
    println!("dc = {}", c.grad(&g).unwrap());
    println!("dr = {}", r.grad(&g).unwrap());
    // expected ds/dc = [r1, -r0], ds/dr = [-c1, c0]
}

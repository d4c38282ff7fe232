//! Single-pass CPU kernels, forward and backward, for the layers that candle composes
//! from many elementwise operations (ReLU, max pooling, batch norm, dropout). Each of
//! candle's versions walks a large activation five to twenty times per batch; on a
//! 2-core laptop that, not the matrix products, bounded training speed.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Result, Shape, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> Result<&'a [f32]> {
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&storage.as_slice::<f32>()?[start..end]),
        None => candle_core::bail!("{what} needs a contiguous f32 input"),
    }
}

fn dims4(layout: &Layout) -> Result<(usize, usize, usize, usize)> {
    layout.shape().dims4()
}

// ---------------------------------------------------------------- ReLU

struct Relu;
struct ReluBackward;

impl CustomOp1 for Relu {
    fn name(&self) -> &'static str {
        "fused-relu"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "relu")?;
        let out: Vec<f32> = x.par_iter().map(|v| v.max(0.0)).collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _arg: &Tensor, res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(
            grad.contiguous()?
                .apply_op2_no_bwd(&res.contiguous()?, &ReluBackward)?,
        ))
    }
}

impl CustomOp2 for ReluBackward {
    fn name(&self) -> &'static str {
        "fused-relu-backward"
    }
    fn cpu_fwd(
        &self,
        g: &CpuStorage,
        gl: &Layout,
        r: &CpuStorage,
        rl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let grad = contiguous(g, gl, "relu backward")?;
        let res = contiguous(r, rl, "relu backward")?;
        let out: Vec<f32> = grad
            .par_iter()
            .zip(res.par_iter())
            .map(|(g, r)| if *r > 0.0 { *g } else { 0.0 })
            .collect();
        Ok((CpuStorage::F32(out), gl.shape().clone()))
    }
}

pub fn relu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Relu)
}

// ---------------------------------------------------------------- max pooling

struct MaxPool {
    size: usize,
}
struct MaxPoolBackward {
    size: usize,
}

impl CustomOp1 for MaxPool {
    fn name(&self) -> &'static str {
        "fused-max-pool"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "max pool")?;
        let (n, c, h, w) = dims4(l)?;
        let k = self.size;
        let (oh, ow) = (h / k, w / k);
        let mut out = vec![0f32; n * c * oh * ow];
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, dst)| {
                let src = &x[plane * h * w..(plane + 1) * h * w];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best = f32::NEG_INFINITY;
                        for dy in 0..k {
                            for dx in 0..k {
                                best = best.max(src[(oy * k + dy) * w + ox * k + dx]);
                            }
                        }
                        dst[oy * ow + ox] = best;
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = MaxPoolBackward { size: self.size };
        Ok(Some(
            arg.contiguous()?
                .apply_op2_no_bwd(&grad.contiguous()?, &op)?,
        ))
    }
}

impl CustomOp2 for MaxPoolBackward {
    fn name(&self) -> &'static str {
        "fused-max-pool-backward"
    }
    /// Routes each window's gradient to its (first) maximum.
    fn cpu_fwd(
        &self,
        a: &CpuStorage,
        al: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(a, al, "max pool backward")?;
        let grad = contiguous(g, gl, "max pool backward")?;
        let (n, c, h, w) = dims4(al)?;
        let k = self.size;
        let (oh, ow) = (h / k, w / k);
        let mut out = vec![0f32; n * c * h * w];
        out.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(plane, dst)| {
                let src = &x[plane * h * w..(plane + 1) * h * w];
                let g = &grad[plane * oh * ow..(plane + 1) * oh * ow];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best = (f32::NEG_INFINITY, 0);
                        for dy in 0..k {
                            for dx in 0..k {
                                let at = (oy * k + dy) * w + ox * k + dx;
                                if src[at] > best.0 {
                                    best = (src[at], at);
                                }
                            }
                        }
                        dst[best.1] += g[oy * ow + ox];
                    }
                }
            });
        Ok((CpuStorage::F32(out), al.shape().clone()))
    }
}

pub fn max_pool2d(x: &Tensor, size: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op1(MaxPool { size })
}

// ---------------------------------------------------------------- dropout

/// Keeps each activation with probability 1 − rate, scaled by 1 / (1 − rate); the
/// backward pass reuses the same mask.
struct Dropout {
    mask: Arc<Vec<f32>>,
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "fused-dropout"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "dropout")?;
        let out: Vec<f32> = x
            .par_iter()
            .zip(self.mask.par_iter())
            .map(|(v, m)| v * m)
            .collect();
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }
    fn bwd(&self, _arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = Dropout {
            mask: self.mask.clone(),
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

pub fn dropout(x: &Tensor, rate: f32, seed: u64) -> Result<Tensor> {
    let mut rng = StdRng::seed_from_u64(seed);
    let scale = 1.0 / (1.0 - rate);
    let mask: Vec<f32> = (0..x.elem_count())
        .map(|_| {
            if rng.random::<f32>() < rate {
                0.0
            } else {
                scale
            }
        })
        .collect();
    x.contiguous()?.apply_op1(Dropout {
        mask: Arc::new(mask),
    })
}

mod batch_norm;

pub use batch_norm::BatchNorm;

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    pub(super) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    /// Our op and candle's, forward and backward, on the same weighted loss.
    pub(super) fn check(
        ours: &dyn Fn(&Tensor) -> Tensor,
        theirs: &dyn Fn(&Tensor) -> Tensor,
        shape: (usize, usize, usize, usize),
        tolerance: f32,
    ) {
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, shape, &Device::Cpu).unwrap()).unwrap();
        let (a, b) = (ours(x.as_tensor()), theirs(x.as_tensor()));
        assert!(max_diff(&a, &b) < tolerance, "forward differs");
        let mix = Tensor::randn(0f32, 1.0, a.shape(), &Device::Cpu).unwrap();
        let ga = (&a * &mix).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&b * &mix).unwrap().sum_all().unwrap().backward().unwrap();
        let d = max_diff(ga.get(&x).unwrap(), gb.get(&x).unwrap());
        assert!(d < tolerance, "input gradient differs by {d}");
    }

    #[test]
    fn relu_and_max_pool_match_candle() {
        check(
            &|x| relu(x).unwrap(),
            &|x| x.relu().unwrap(),
            (2, 3, 6, 6),
            1e-6,
        );
        // candle's own max-pool gradient divides by the window size (it spreads the
        // average of the max mask), so ours is checked against the definition instead:
        // each window's gradient goes to its maximum, as in PyTorch.
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 6, 7), &Device::Cpu).unwrap())
            .unwrap();
        let y = max_pool2d(x.as_tensor(), 2).unwrap();
        assert!(max_diff(&y, &x.as_tensor().max_pool2d(2).unwrap()) < 1e-6);
        let mix = Tensor::randn(0f32, 1.0, y.shape(), &Device::Cpu).unwrap();
        let grads = (&y * &mix).unwrap().sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let xv: Vec<f32> = x.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let mv: Vec<f32> = mix.flatten_all().unwrap().to_vec1().unwrap();
        let mut expected = vec![0f32; xv.len()];
        for plane in 0..6 {
            for oy in 0..3 {
                for ox in 0..3 {
                    let at = (0..4)
                        .map(|i| plane * 42 + (oy * 2 + i / 2) * 7 + ox * 2 + i % 2)
                        .max_by(|a, b| xv[*a].total_cmp(&xv[*b]))
                        .unwrap();
                    expected[at] += mv[plane * 9 + oy * 3 + ox];
                }
            }
        }
        assert_eq!(g, expected);
    }

    #[test]
    fn dropout_scales_what_it_keeps_and_routes_gradients_through_the_same_mask() {
        let x = Var::from_tensor(
            &Tensor::ones((1000,), candle_core::DType::F32, &Device::Cpu).unwrap(),
        )
        .unwrap();
        let y = dropout(x.as_tensor(), 0.25, 7).unwrap();
        let values: Vec<f32> = y.to_vec1().unwrap();
        let kept = values.iter().filter(|v| **v > 0.0).count();
        assert!((700..800).contains(&kept), "{kept}");
        assert!(
            values
                .iter()
                .all(|v| *v == 0.0 || (*v - 1.0 / 0.75).abs() < 1e-6)
        );
        let grads = y.sum_all().unwrap().backward().unwrap();
        let g: Vec<f32> = grads.get(&x).unwrap().to_vec1().unwrap();
        assert_eq!(g, values);
        assert_eq!(
            dropout(x.as_tensor(), 0.25, 7)
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            values,
            "seeded"
        );
    }
}

//! Batch norm for training: per-channel statistics, the normalisation and its backward
//! pass as single multithreaded kernels, and batch norm + ReLU + max pooling fused into
//! one node of the graph.

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, Var,
};
use rayon::prelude::*;

use super::{contiguous, dims4};

/// Per-channel mean and variance (biased) of `[N, C, …]`, as `[2, C]`.
struct ChannelStats;

fn channel_stats(x: &[f32], n: usize, c: usize, plane: usize) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let (mut sum, mut sum_sq) = (0.0f64, 0.0f64);
            for b in 0..n {
                for v in &x[(b * c + ci) * plane..(b * c + ci + 1) * plane] {
                    sum += f64::from(*v);
                    sum_sq += f64::from(*v) * f64::from(*v);
                }
            }
            let m = (n * plane) as f64;
            let mean = sum / m;
            (mean, (sum_sq / m - mean * mean).max(0.0))
        })
        .collect()
}

/// `[N, C, H, W]` or `[N, C]` as (n, c, plane size).
fn nc_plane(shape: &Shape) -> Result<(usize, usize, usize)> {
    let dims = shape.dims();
    if dims.len() < 2 {
        candle_core::bail!("batch norm needs [N, C, …], got {dims:?}");
    }
    Ok((dims[0], dims[1], dims[2..].iter().product()))
}

impl CustomOp1 for ChannelStats {
    fn name(&self) -> &'static str {
        "fused-channel-stats"
    }
    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(s, l, "batch norm")?;
        let (n, c, plane) = nc_plane(l.shape())?;
        let stats = channel_stats(x, n, c, plane);
        let mut out: Vec<f32> = stats.iter().map(|s| s.0 as f32).collect();
        out.extend(stats.iter().map(|s| s.1 as f32));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// Training-mode batch norm: normalise with the batch's statistics, then scale and shift.
struct BatchNormTrain {
    eps: f64,
}

/// dx of [`BatchNormTrain`], from (x, gamma, dy).
struct BatchNormBackwardInput {
    eps: f64,
}

/// (dgamma, dbeta) as `[2, C]`, from (x, dy).
struct BatchNormBackwardParams {
    eps: f64,
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "fused-batch-norm"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, "batch norm")?;
        let gamma = contiguous(gs, gl, "batch norm")?;
        let beta = contiguous(bs, bl, "batch norm")?;
        let (n, c, plane) = nc_plane(xl.shape())?;
        let stats = channel_stats(x, n, c, plane);
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
            let ci = i % c;
            let (mean, var) = stats[ci];
            let scale = gamma[ci] as f64 / (var + self.eps).sqrt();
            let shift = beta[ci] as f64 - mean * scale;
            for (d, v) in dst.iter_mut().zip(&x[i * plane..(i + 1) * plane]) {
                *d = (f64::from(*v) * scale + shift) as f32;
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (x, grad) = (x.contiguous()?, grad.contiguous()?);
        let dx = x.apply_op3_no_bwd(
            &gamma.contiguous()?,
            &grad,
            &BatchNormBackwardInput { eps: self.eps },
        )?;
        let params = x.apply_op2_no_bwd(&grad, &BatchNormBackwardParams { eps: self.eps })?;
        Ok((Some(dx), Some(params.get(0)?), Some(params.get(1)?)))
    }
}

/// Per channel: (sum of dy, sum of dy · x̂) with x̂ the normalised input.
fn grad_sums(
    x: &[f32],
    dy: &[f32],
    n: usize,
    c: usize,
    plane: usize,
    eps: f64,
) -> Vec<(f64, f64, f64, f64)> {
    let stats = channel_stats(x, n, c, plane);
    (0..c)
        .into_par_iter()
        .map(|ci| {
            let (mean, var) = stats[ci];
            let inv_std = 1.0 / (var + eps).sqrt();
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for b in 0..n {
                let range = (b * c + ci) * plane..(b * c + ci + 1) * plane;
                for (v, g) in x[range.clone()].iter().zip(&dy[range]) {
                    sum_dy += f64::from(*g);
                    sum_dy_xhat += f64::from(*g) * (f64::from(*v) - mean) * inv_std;
                }
            }
            (mean, inv_std, sum_dy, sum_dy_xhat)
        })
        .collect()
}

impl CustomOp3 for BatchNormBackwardInput {
    fn name(&self) -> &'static str {
        "fused-batch-norm-backward-input"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, "batch norm backward")?;
        let gamma = contiguous(gs, gl, "batch norm backward")?;
        let dy = contiguous(ds, dl, "batch norm backward")?;
        let (n, c, plane) = nc_plane(xl.shape())?;
        let sums = grad_sums(x, dy, n, c, plane, self.eps);
        let m = (n * plane) as f64;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
            let ci = i % c;
            let (mean, inv_std, sum_dy, sum_dy_xhat) = sums[ci];
            let k = f64::from(gamma[ci]) * inv_std / m;
            let range = i * plane..(i + 1) * plane;
            for ((d, v), g) in dst.iter_mut().zip(&x[range.clone()]).zip(&dy[range]) {
                let xhat = (f64::from(*v) - mean) * inv_std;
                *d = (k * (m * f64::from(*g) - sum_dy - xhat * sum_dy_xhat)) as f32;
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

impl CustomOp2 for BatchNormBackwardParams {
    fn name(&self) -> &'static str {
        "fused-batch-norm-backward-params"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, "batch norm backward")?;
        let dy = contiguous(ds, dl, "batch norm backward")?;
        let (n, c, plane) = nc_plane(xl.shape())?;
        let sums = grad_sums(x, dy, n, c, plane, self.eps);
        let mut out: Vec<f32> = sums.iter().map(|s| s.3 as f32).collect();
        out.extend(sums.iter().map(|s| s.2 as f32));
        Ok((CpuStorage::F32(out), Shape::from((2, c))))
    }
}

/// Training-mode batch norm, ReLU and max pooling in one node: `[N, C, H, W]` in,
/// `[N, C, H/k, W/k]` out. The backward pass recomputes the normalised values instead of
/// keeping two full-size intermediates (and their gradients) in the graph.
struct NormReluPool {
    eps: f64,
    pool: usize,
}

/// dx, then (dgamma, dbeta) as `[2, C]`, of [`NormReluPool`]; from (x, gamma ‖ beta, dy).
struct NormReluPoolBackward {
    eps: f64,
    pool: usize,
    /// Which gradient to produce: the input's, or the parameters'.
    params: bool,
}

/// Per channel: scale and shift of the affine normalisation, from batch statistics.
fn affine(stats: &[(f64, f64)], gamma: &[f32], beta: &[f32], eps: f64) -> Vec<(f64, f64, f64)> {
    stats
        .iter()
        .zip(gamma.iter().zip(beta))
        .map(|(&(mean, var), (&g, &b))| {
            let inv_std = 1.0 / (var + eps).sqrt();
            let scale = f64::from(g) * inv_std;
            (scale, f64::from(b) - mean * scale, inv_std)
        })
        .collect()
}

impl CustomOp3 for NormReluPool {
    fn name(&self) -> &'static str {
        "fused-norm-relu-pool"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, "norm-relu-pool")?;
        let gamma = contiguous(gs, gl, "norm-relu-pool")?;
        let beta = contiguous(bs, bl, "norm-relu-pool")?;
        let (n, c, h, w) = dims4(xl)?;
        let k = self.pool;
        let (oh, ow) = (h / k, w / k);
        let coefficients = affine(&channel_stats(x, n, c, h * w), gamma, beta, self.eps);
        let mut out = vec![0f32; n * c * oh * ow];
        out.par_chunks_mut(oh * ow)
            .enumerate()
            .for_each(|(plane, dst)| {
                let (scale, shift, _) = coefficients[plane % c];
                let src = &x[plane * h * w..(plane + 1) * h * w];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best = 0f64; // ReLU: the maximum is at least 0
                        for dy in 0..k {
                            for dx in 0..k {
                                let v =
                                    f64::from(src[(oy * k + dy) * w + ox * k + dx]) * scale + shift;
                                best = best.max(v);
                            }
                        }
                        dst[oy * ow + ox] = best as f32;
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, oh, ow))))
    }
    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let x = x.contiguous()?;
        let grad = grad.contiguous()?;
        let params = Tensor::cat(&[gamma, beta], 0)?;
        let op = |params_wanted| NormReluPoolBackward {
            eps: self.eps,
            pool: self.pool,
            params: params_wanted,
        };
        let dx = x.apply_op3_no_bwd(&params, &grad, &op(false))?;
        let d_params = x.apply_op3_no_bwd(&params, &grad, &op(true))?;
        Ok((Some(dx), Some(d_params.get(0)?), Some(d_params.get(1)?)))
    }
}

impl CustomOp3 for NormReluPoolBackward {
    fn name(&self) -> &'static str {
        "fused-norm-relu-pool-backward"
    }
    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
        ds: &CpuStorage,
        dl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous(xs, xl, "norm-relu-pool backward")?;
        let params = contiguous(ps, pl, "norm-relu-pool backward")?;
        let dy = contiguous(ds, dl, "norm-relu-pool backward")?;
        let (n, c, h, w) = dims4(xl)?;
        let (gamma, beta) = params.split_at(c);
        let k = self.pool;
        let (oh, ow) = (h / k, w / k);
        let coefficients = affine(&channel_stats(x, n, c, h * w), gamma, beta, self.eps);
        // The gradient at the normalised-and-shifted value z (before ReLU): the pooled
        // gradient routed to each window's maximum, where that maximum is positive.
        let mut dz = vec![0f32; x.len()];
        dz.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(plane, dst)| {
                let (scale, shift, _) = coefficients[plane % c];
                let src = &x[plane * h * w..(plane + 1) * h * w];
                let g = &dy[plane * oh * ow..(plane + 1) * oh * ow];
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best = (0f64, usize::MAX);
                        for ddy in 0..k {
                            for ddx in 0..k {
                                let at = (oy * k + ddy) * w + ox * k + ddx;
                                let v = f64::from(src[at]) * scale + shift;
                                if v > best.0 {
                                    best = (v, at);
                                }
                            }
                        }
                        if best.1 != usize::MAX {
                            dst[best.1] += g[oy * ow + ox];
                        }
                    }
                }
            });
        // Then through the affine batch norm, per channel.
        let plane = h * w;
        let m = (n * plane) as f64;
        // Per channel: Σ dz and Σ dz·x̂, with x̂ the normalised input.
        let stats = channel_stats(x, n, c, plane);
        let sums: Vec<(f64, f64)> = (0..c)
            .into_par_iter()
            .map(|ci| {
                let (mean, _) = stats[ci];
                let inv_std = coefficients[ci].2;
                let (mut sum_dz, mut sum_dz_xhat) = (0.0f64, 0.0f64);
                for b in 0..n {
                    let range = (b * c + ci) * plane..(b * c + ci + 1) * plane;
                    for (v, d) in x[range.clone()].iter().zip(&dz[range]) {
                        sum_dz += f64::from(*d);
                        sum_dz_xhat += f64::from(*d) * (f64::from(*v) - mean) * inv_std;
                    }
                }
                (sum_dz, sum_dz_xhat)
            })
            .collect();
        if self.params {
            // dgamma = Σ dz·x̂, dbeta = Σ dz.
            let mut out: Vec<f32> = sums.iter().map(|s| s.1 as f32).collect();
            out.extend(sums.iter().map(|s| s.0 as f32));
            return Ok((CpuStorage::F32(out), Shape::from((2, c))));
        }
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
            let ci = i % c;
            let (mean, _) = stats[ci];
            let inv_std = coefficients[ci].2;
            let (sum_dz, sum_dz_xhat) = sums[ci];
            let factor = f64::from(gamma[ci]) * inv_std / m;
            let range = i * plane..(i + 1) * plane;
            for ((o, v), d) in dst.iter_mut().zip(&x[range.clone()]).zip(&dz[range]) {
                let xhat = (f64::from(*v) - mean) * inv_std;
                *o = (factor * (m * f64::from(*d) - sum_dz - xhat * sum_dz_xhat)) as f32;
            }
        });
        Ok((CpuStorage::F32(out), xl.shape().clone()))
    }
}

/// Batch norm over channel 1 of `[N, C, …]`, with PyTorch's parameter names and
/// running-statistics update (momentum 0.1, unbiased running variance).
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    eps: f64,
    momentum: f64,
}

impl BatchNorm {
    pub fn new(features: usize, vb: candle_nn::VarBuilder) -> Result<BatchNorm> {
        use candle_nn::Init;
        let running_mean = vb.get_with_hints(features, "running_mean", Init::Const(0.0))?;
        let running_var = vb.get_with_hints(features, "running_var", Init::Const(1.0))?;
        Ok(BatchNorm {
            weight: vb.get_with_hints(features, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(features, "bias", Init::Const(0.0))?,
            running_mean: Var::from_tensor(&running_mean)?,
            running_var: Var::from_tensor(&running_var)?,
            eps: 1e-5,
            momentum: 0.1,
        })
    }

    /// Training-mode batch norm, ReLU and `pool`×`pool` max pooling as one node.
    pub fn forward_relu_pool(&self, x: &Tensor, pool: usize) -> Result<Tensor> {
        let x = x.contiguous()?;
        self.update_running_stats(&x)?;
        x.apply_op3(
            &self.weight,
            &self.bias,
            NormReluPool {
                eps: self.eps,
                pool,
            },
        )
    }

    fn update_running_stats(&self, x: &Tensor) -> Result<()> {
        let channels = x.dim(1)?;
        let stats = x.detach().apply_op1_no_bwd(&ChannelStats)?;
        let (mean, var) = (stats.get(0)?, stats.get(1)?);
        let m = (x.elem_count() / channels) as f64;
        let unbiased = (var * (m / (m - 1.0).max(1.0)))?;
        self.running_mean.set(
            &((self.running_mean.as_tensor() * (1.0 - self.momentum))? + (mean * self.momentum)?)?,
        )?;
        self.running_var.set(
            &((self.running_var.as_tensor() * (1.0 - self.momentum))?
                + (unbiased * self.momentum)?)?,
        )
    }

    pub fn forward_t(&self, x: &Tensor, train: bool) -> Result<Tensor> {
        let x = x.contiguous()?;
        let dims = x.dims().to_vec();
        let mut channel_shape = vec![1usize; dims.len()];
        channel_shape[1] = dims[1];
        if !train {
            let scale =
                (self.weight.as_ref() / (self.running_var.as_tensor() + self.eps)?.sqrt()?)?;
            let shift = (&self.bias - (self.running_mean.as_tensor() * &scale)?)?;
            return x
                .broadcast_mul(&scale.reshape(channel_shape.clone())?)?
                .broadcast_add(&shift.reshape(channel_shape)?);
        }
        self.update_running_stats(&x)?;
        x.apply_op3(&self.weight, &self.bias, BatchNormTrain { eps: self.eps })
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check, max_diff};
    use super::super::{max_pool2d, relu};
    use super::*;
    use candle_core::Device;
    use candle_nn::ModuleT;

    #[test]
    fn batch_norm_matches_candle_in_training_and_eval() {
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
        let ours = BatchNorm::new(3, vb.pp("ours")).unwrap();
        let theirs =
            candle_nn::batch_norm(3, candle_nn::BatchNormConfig::default(), vb.pp("theirs"))
                .unwrap();
        check(
            &|x| ours.forward_t(x, true).unwrap(),
            &|x| theirs.forward_t(x, true).unwrap(),
            (4, 3, 5, 5),
            1e-4,
        );
        // Running statistics moved the same way, so evaluation agrees too.
        let x = Tensor::randn(0f32, 1.0, (2, 3, 5, 5), &Device::Cpu).unwrap();
        let d = max_diff(
            &ours.forward_t(&x, false).unwrap(),
            &theirs.forward_t(&x, false).unwrap(),
        );
        assert!(d < 1e-4, "eval differs by {d}");

        // Gradients of gamma and beta against candle's.
        let data = varmap.data().lock().unwrap();
        let (w1, b1) = (data["ours.weight"].clone(), data["ours.bias"].clone());
        let (w2, b2) = (data["theirs.weight"].clone(), data["theirs.bias"].clone());
        drop(data);
        let x = Tensor::randn(0f32, 1.0, (4, 3, 2, 2), &Device::Cpu).unwrap();
        let mix = Tensor::randn(0f32, 1.0, (4, 3, 2, 2), &Device::Cpu).unwrap();
        let g1 = (ours.forward_t(&x, true).unwrap() * &mix)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (theirs.forward_t(&x, true).unwrap() * &mix)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(max_diff(g1.get(&w1).unwrap(), g2.get(&w2).unwrap()) < 1e-4);
        assert!(max_diff(g1.get(&b1).unwrap(), g2.get(&b2).unwrap()) < 1e-4);
    }

    /// The fused batch norm + ReLU + pool equals the three separate ops, forward and
    /// backward (input, gamma and beta).
    #[test]
    fn norm_relu_pool_equals_the_separate_ops() {
        let varmap = candle_nn::VarMap::new();
        let vb = candle_nn::VarBuilder::from_varmap(&varmap, candle_core::DType::F32, &Device::Cpu);
        let fused_norm = BatchNorm::new(3, vb.pp("a")).unwrap();
        let plain_norm = BatchNorm::new(3, vb.pp("b")).unwrap();
        // Non-trivial gamma and beta.
        {
            let data = varmap.data().lock().unwrap();
            for prefix in ["a", "b"] {
                data[&format!("{prefix}.weight")]
                    .set(&Tensor::new(&[1.5f32, -0.7, 0.9], &Device::Cpu).unwrap())
                    .unwrap();
                data[&format!("{prefix}.bias")]
                    .set(&Tensor::new(&[0.2f32, 0.1, -0.3], &Device::Cpu).unwrap())
                    .unwrap();
            }
        }
        let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3, 6, 6), &Device::Cpu).unwrap())
            .unwrap();
        let fused = fused_norm.forward_relu_pool(x.as_tensor(), 2).unwrap();
        let plain = max_pool2d(
            &relu(&plain_norm.forward_t(x.as_tensor(), true).unwrap()).unwrap(),
            2,
        )
        .unwrap();
        let diff = |a: &Tensor, b: &Tensor| {
            (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap()
        };
        assert!(diff(&fused, &plain) < 1e-5, "forward");
        let mix = Tensor::randn(0f32, 1.0, fused.shape(), &Device::Cpu).unwrap();
        let g1 = (&fused * &mix)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g2 = (&plain * &mix)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        assert!(
            diff(g1.get(&x).unwrap(), g2.get(&x).unwrap()) < 1e-4,
            "input gradient"
        );
        let data = varmap.data().lock().unwrap();
        for name in ["weight", "bias"] {
            let a = g1.get(&data[&format!("a.{name}")]).unwrap();
            let b = g2.get(&data[&format!("b.{name}")]).unwrap();
            assert!(diff(a, b) < 1e-4, "{name} gradient");
        }
        // Running statistics moved the same way.
        assert!(
            diff(
                data["a.running_mean"].as_tensor(),
                data["b.running_mean"].as_tensor()
            ) < 1e-6
        );
        assert!(
            diff(
                data["a.running_var"].as_tensor(),
                data["b.running_var"].as_tensor()
            ) < 1e-6
        );
    }
}

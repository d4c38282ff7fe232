//! Single-pass CPU kernels, forward and backward, for the layers that candle composes
//! from many elementwise operations (ReLU, max pooling, batch norm, dropout). Each of
//! candle's versions walks a large activation five to twenty times per batch; on a
//! 2-core laptop that, not the matrix products, bounded training speed.

use std::sync::Arc;

use candle_core::{
    CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor, Var,
};
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

// ---------------------------------------------------------------- batch norm

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
    use super::*;
    use candle_core::Device;
    use candle_nn::ModuleT;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
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
    fn check(
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

#[cfg(test)]
mod fused_block_tests {
    use super::*;
    use candle_core::Device;

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

//! A 2-D convolution as im2col + one large matrix product, with col2im as the backward
//! pass. candle's own CPU convolution computes input gradients with a direct transposed
//! convolution loop, which made training about ten times slower than this.

use candle_core::{CpuStorage, CustomOp1, Layout, Module, Result, Shape, Tensor};
use rayon::prelude::*;

/// `[N, C, H, W]` → `[C·k·k, N·H'·W']`: each column holds one output position's patch.
struct Im2Col {
    kernel: usize,
    padding: usize,
}

/// The adjoint of [`Im2Col`]: patch gradients summed back onto the input pixels.
struct Col2Im {
    kernel: usize,
    padding: usize,
    dims: (usize, usize, usize, usize),
}

fn out_size(size: usize, kernel: usize, padding: usize) -> usize {
    size + 2 * padding + 1 - kernel
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = layout.shape().dims4()?;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("im2col needs a contiguous input");
        };
        let data = &storage.as_slice::<f32>()?[start..end];
        let (k, p) = (self.kernel, self.padding);
        let (oh, ow) = (out_size(h, k, p), out_size(w, k, p));
        let columns = n * oh * ow;
        let mut out = vec![0f32; c * k * k * columns];
        // One row of the result per (channel, ky, kx): rows are independent.
        out.par_chunks_mut(columns)
            .enumerate()
            .for_each(|(row, dst)| {
                let (ci, ky, kx) = (row / (k * k), (row / k) % k, row % k);
                for b in 0..n {
                    let image = &data[(b * c + ci) * h * w..(b * c + ci + 1) * h * w];
                    for oy in 0..oh {
                        let iy = (oy + ky) as isize - p as isize;
                        let base = (b * oh + oy) * ow;
                        if iy < 0 || iy >= h as isize {
                            continue;
                        }
                        let line = &image[iy as usize * w..(iy as usize + 1) * w];
                        for ox in 0..ow {
                            let ix = (ox + kx) as isize - p as isize;
                            if ix >= 0 && ix < w as isize {
                                dst[base + ox] = line[ix as usize];
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((c * k * k, columns))))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let op = Col2Im {
            kernel: self.kernel,
            padding: self.padding,
            dims: arg.dims4()?,
        };
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&op)?))
    }
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let (n, c, h, w) = self.dims;
        let Some((start, end)) = layout.contiguous_offsets() else {
            candle_core::bail!("col2im needs a contiguous input");
        };
        let cols = &storage.as_slice::<f32>()?[start..end];
        let (k, p) = (self.kernel, self.padding);
        let (oh, ow) = (out_size(h, k, p), out_size(w, k, p));
        let columns = n * oh * ow;
        let mut out = vec![0f32; n * c * h * w];
        // One input image-channel per task: each writes only its own pixels.
        out.par_chunks_mut(h * w)
            .enumerate()
            .for_each(|(plane, dst)| {
                let (b, ci) = (plane / c, plane % c);
                for ky in 0..k {
                    for kx in 0..k {
                        let row = &cols[((ci * k + ky) * k + kx) * columns..][..columns];
                        for oy in 0..oh {
                            let iy = (oy + ky) as isize - p as isize;
                            if iy < 0 || iy >= h as isize {
                                continue;
                            }
                            let base = (b * oh + oy) * ow;
                            for ox in 0..ow {
                                let ix = (ox + kx) as isize - p as isize;
                                if ix >= 0 && ix < w as isize {
                                    dst[iy as usize * w + ix as usize] += row[base + ox];
                                }
                            }
                        }
                    }
                }
            });
        Ok((CpuStorage::F32(out), Shape::from((n, c, h, w))))
    }
}

/// `[O, N·L]` plus a per-row bias, laid out as `[N, O, L]` (what the product gives, in
/// the layout the next layer wants), in one pass each way.
struct BiasToBatchMajor {
    batch: usize,
    /// The output's spatial size, so no reshape node follows (each node costs the
    /// backward pass a full zero-and-add over its gradient).
    height: usize,
    width: usize,
}

/// The gradient of [`BiasToBatchMajor`]'s input: `[N, O, L]` back to `[O, N·L]`.
struct BatchMajorToRows {
    batch: usize,
}

impl candle_core::CustomOp2 for BiasToBatchMajor {
    fn name(&self) -> &'static str {
        "bias-to-batch-major"
    }

    fn cpu_fwd(
        &self,
        s: &CpuStorage,
        l: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (Some((a, b)), Some((c, d))) = (l.contiguous_offsets(), bl.contiguous_offsets()) else {
            candle_core::bail!("bias-to-batch-major needs contiguous inputs");
        };
        let rows = &s.as_slice::<f32>()?[a..b];
        let bias = &bs.as_slice::<f32>()?[c..d];
        let (o, nl) = l.shape().dims2()?;
        let n = self.batch;
        let len = nl / n;
        let mut out = vec![0f32; o * nl];
        out.par_chunks_mut(len).enumerate().for_each(|(i, dst)| {
            let (b, oc) = (i / o, i % o);
            let src = &rows[oc * nl + b * len..][..len];
            for (d, v) in dst.iter_mut().zip(src) {
                *d = v + bias[oc];
            }
        });
        Ok((
            CpuStorage::F32(out),
            Shape::from((n, o, self.height, self.width)),
        ))
    }

    fn bwd(
        &self,
        _rows: &Tensor,
        _bias: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let (n, o, h, w) = grad.dims4()?;
        let grad = grad.reshape((n, o, h * w))?;
        let d_rows = grad.apply_op1_no_bwd(&BatchMajorToRows { batch: self.batch })?;
        let d_bias = grad.sum((0, 2))?;
        Ok((Some(d_rows), Some(d_bias)))
    }
}

impl CustomOp1 for BatchMajorToRows {
    fn name(&self) -> &'static str {
        "batch-major-to-rows"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let Some((a, b)) = l.contiguous_offsets() else {
            candle_core::bail!("batch-major-to-rows needs a contiguous input");
        };
        let src = &s.as_slice::<f32>()?[a..b];
        let (n, o, len) = l.shape().dims3()?;
        debug_assert_eq!(n, self.batch);
        let mut out = vec![0f32; n * o * len];
        out.par_chunks_mut(len).enumerate().for_each(|(i, dst)| {
            // Row oc, batch b of the output is block (b, oc) of the input.
            let (oc, b) = (i / n, i % n);
            dst.copy_from_slice(&src[(b * o + oc) * len..][..len]);
        });
        Ok((CpuStorage::F32(out), Shape::from((o, n * len))))
    }
}

/// Stride-1 convolution with weights `[out, in, k, k]` and a bias `[out]`, named
/// `weight` and `bias` like PyTorch's and candle's, so saved weights look the same.
pub struct Conv {
    weight: Tensor,
    bias: Tensor,
    kernel: usize,
    padding: usize,
}

impl Conv {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        padding: usize,
        vb: candle_nn::VarBuilder,
    ) -> Result<Conv> {
        let fan_in = in_channels * kernel * kernel;
        let bound = 1.0 / (fan_in as f64).sqrt();
        let weight = vb.get_with_hints(
            (out_channels, in_channels, kernel, kernel),
            "weight",
            candle_nn::init::DEFAULT_KAIMING_NORMAL,
        )?;
        let bias = vb.get_with_hints(
            out_channels,
            "bias",
            candle_nn::Init::Uniform {
                lo: -bound,
                up: bound,
            },
        )?;
        Ok(Conv {
            weight,
            bias,
            kernel,
            padding,
        })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (n, _, h, w) = x.dims4()?;
        let (oh, ow) = (
            out_size(h, self.kernel, self.padding),
            out_size(w, self.kernel, self.padding),
        );
        let cols = x.contiguous()?.apply_op1(Im2Col {
            kernel: self.kernel,
            padding: self.padding,
        })?;
        // [out, C·k·k] × [C·k·k, N·H'·W'] in one product, then to [N, out, H', W'].
        let out = self.weight.flatten_from(1)?.matmul(&cols)?;
        out.apply_op2(
            &self.bias,
            BiasToBatchMajor {
                batch: n,
                height: oh,
                width: ow,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// Against candle's own convolution, forward and both gradients.
    #[test]
    fn matches_candles_convolution_forward_and_backward() {
        let device = Device::Cpu;
        for (k, p) in [(3, 0), (3, 1), (5, 2)] {
            let x = Var::from_tensor(&Tensor::randn(0f32, 1.0, (2, 3, 7, 6), &device).unwrap())
                .unwrap();
            let weight =
                Var::from_tensor(&Tensor::randn(0f32, 1.0, (4, 3, k, k), &device).unwrap())
                    .unwrap();
            let bias = Var::from_tensor(&Tensor::randn(0f32, 1.0, 4, &device).unwrap()).unwrap();
            let ours = Conv {
                weight: weight.as_tensor().clone(),
                bias: bias.as_tensor().clone(),
                kernel: k,
                padding: p,
            }
            .forward(x.as_tensor())
            .unwrap();
            let theirs = x
                .as_tensor()
                .conv2d(weight.as_tensor(), p, 1, 1, 1)
                .unwrap()
                .broadcast_add(&bias.as_tensor().reshape((1, 4, 1, 1)).unwrap())
                .unwrap();
            let diff = (&ours - &theirs).unwrap().abs().unwrap().max_all().unwrap();
            assert!(
                diff.to_scalar::<f32>().unwrap() < 1e-4,
                "forward k={k} p={p}"
            );

            // A loss that weighs every output differently.
            let mix = Tensor::randn(0f32, 1.0, ours.shape(), &device).unwrap();
            let g1 = (&ours * &mix)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let g2 = (&theirs * &mix)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            for var in [&x, &weight, &bias] {
                let a = g1.get(var).unwrap();
                let b = g2.get(var).unwrap();
                let diff = (a - b)
                    .unwrap()
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap();
                assert!(diff < 1e-3, "gradient k={k} p={p}: {diff}");
            }
            let _ = DType::F32;
        }
    }
}

#[cfg(test)]
mod bench {
    use super::*;
    use candle_core::{Device, Var};
    use std::time::Instant;

    #[test]
    #[ignore]
    fn bench_conv_parts() {
        let device = Device::Cpu;
        let x = Tensor::randn(0f32, 1.0, (64, 1, 28, 28), &device).unwrap();
        let weight =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (32, 1, 3, 3), &device).unwrap()).unwrap();
        let bias = Var::from_tensor(&Tensor::randn(0f32, 1.0, 32, &device).unwrap()).unwrap();
        let conv = Conv {
            weight: weight.as_tensor().clone(),
            bias: bias.as_tensor().clone(),
            kernel: 3,
            padding: 0,
        };
        let time = |label: &str, f: &mut dyn FnMut()| {
            f();
            let t = Instant::now();
            for _ in 0..20 {
                f();
            }
            println!(
                "{label}: {:.2} ms",
                t.elapsed().as_secs_f64() * 1000.0 / 20.0
            );
        };
        time("im2col", &mut || {
            x.apply_op1(Im2Col {
                kernel: 3,
                padding: 0,
            })
            .unwrap();
        });
        let cols = x
            .apply_op1(Im2Col {
                kernel: 3,
                padding: 0,
            })
            .unwrap();
        let w2 = weight.as_tensor().flatten_from(1).unwrap();
        time("matmul", &mut || {
            w2.matmul(&cols).unwrap();
        });
        let out = w2.matmul(&cols).unwrap();
        time("bias+transpose", &mut || {
            out.broadcast_add(&bias.as_tensor().unsqueeze(1).unwrap())
                .unwrap()
                .reshape((32, 64, 26, 26))
                .unwrap()
                .transpose(0, 1)
                .unwrap()
                .contiguous()
                .unwrap();
        });
        time("forward", &mut || {
            conv.forward(&x).unwrap();
        });
        time("forward+backward", &mut || {
            conv.forward(&x)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
        });
        time("candle conv2d fwd+bwd", &mut || {
            x.conv2d(weight.as_tensor(), 0, 1, 1, 1)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
        });
        let y = conv.forward(&x).unwrap();
        time("relu", &mut || {
            y.relu().unwrap();
        });
        time("maxpool", &mut || {
            y.max_pool2d(2).unwrap();
        });
        let yv = Var::from_tensor(&y).unwrap();
        time("maxpool fwd+bwd", &mut || {
            yv.as_tensor()
                .max_pool2d(2)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
        });
        time("relu fwd+bwd", &mut || {
            yv.as_tensor()
                .relu()
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
        });
    }
}

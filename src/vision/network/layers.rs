//! The layers of the hand-written training network: each one's forward pass and the
//! backward pass that turns the gradient of its output into the gradient of its input and
//! of its parameters, over `[batch × C × H × W]` buffers.

use gemm::Parallelism;
use rayon::prelude::*;

use super::{BATCH_NORM_EPS, BATCH_NORM_MOMENTUM, Param};

mod mobile;

pub(super) use mobile::{Depthwise, GlobalAveragePool};

/// A row-major matrix view with explicit strides, so transposes cost nothing.
#[derive(Clone, Copy)]
pub(super) struct View<'a> {
    data: &'a [f32],
    row_stride: usize,
    col_stride: usize,
}

impl View<'_> {
    pub(super) fn rows(data: &[f32], cols: usize) -> View<'_> {
        View {
            data,
            row_stride: cols,
            col_stride: 1,
        }
    }
    /// The transpose of a row-major `[rows × cols]` matrix.
    pub(super) fn transposed(data: &[f32], cols: usize) -> View<'_> {
        View {
            data,
            row_stride: 1,
            col_stride: cols,
        }
    }
    /// Whether a `rows × cols` matrix read through this view stays inside its slice.
    fn holds(&self, rows: usize, cols: usize) -> bool {
        rows == 0
            || cols == 0
            || (rows - 1) * self.row_stride + (cols - 1) * self.col_stride < self.data.len()
    }
}

/// `dst[m×n] (+)= a[m×k] · b[k×n]`, `dst` row-major.
pub(super) fn matmul(
    (m, k, n): (usize, usize, usize),
    dst: &mut [f32],
    accumulate: bool,
    a: View,
    b: View,
    threads: usize,
) {
    assert!(
        dst.len() >= m * n && a.holds(m, k) && b.holds(k, n),
        "matrix product out of bounds"
    );
    let parallelism = if threads > 1 {
        Parallelism::Rayon(threads)
    } else {
        Parallelism::None
    };
    // SAFETY: the assertion above keeps every strided read and write inside the slices,
    // which outlive the call.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.col_stride as isize,
            a.row_stride as isize,
            b.data.as_ptr(),
            b.col_stride as isize,
            b.row_stride as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Shape {
    pub(super) channels: usize,
    pub(super) height: usize,
    pub(super) width: usize,
}

impl Shape {
    pub(super) fn len(&self) -> usize {
        self.channels * self.height * self.width
    }
    pub(super) fn plane(&self) -> usize {
        self.height * self.width
    }
}

pub(super) struct Conv {
    pub(super) input: Shape,
    pub(super) output: Shape,
    pub(super) kernel: usize,
    pub(super) padding: usize,
    pub(super) stride: usize,
    pub(super) weight: usize,
    /// `None` for a convolution without bias (one followed by batch norm).
    pub(super) bias: Option<usize>,
    /// The first layer needs no input gradient.
    pub(super) first: bool,
    /// im2col of every image of the batch, `[K × P]` each, kept for the backward pass.
    pub(super) columns: Vec<f32>,
}

impl Conv {
    pub(super) fn patch(&self) -> usize {
        self.input.channels * self.kernel * self.kernel
    }

    pub(super) fn im2col(&self, image: &[f32], columns: &mut [f32]) {
        let Shape {
            channels,
            height,
            width,
        } = self.input;
        let (oh, ow, k, pad, stride) = (
            self.output.height,
            self.output.width,
            self.kernel,
            self.padding,
            self.stride,
        );
        for c in 0..channels {
            let plane = &image[c * height * width..][..height * width];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &mut columns[((c * k + ky) * k + kx) * oh * ow..][..oh * ow];
                    for oy in 0..oh {
                        let out = &mut row[oy * ow..][..ow];
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        if iy < 0 || iy >= height as isize {
                            out.fill(0.0);
                            continue;
                        }
                        let line = &plane[iy as usize * width..][..width];
                        for (ox, value) in out.iter_mut().enumerate() {
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            *value = if ix < 0 || ix >= width as isize {
                                0.0
                            } else {
                                line[ix as usize]
                            };
                        }
                    }
                }
            }
        }
    }

    pub(super) fn col2im(&self, columns: &[f32], image: &mut [f32]) {
        let Shape {
            channels,
            height,
            width,
        } = self.input;
        let (oh, ow, k, pad, stride) = (
            self.output.height,
            self.output.width,
            self.kernel,
            self.padding,
            self.stride,
        );
        image.fill(0.0);
        for c in 0..channels {
            let plane = &mut image[c * height * width..][..height * width];
            for ky in 0..k {
                for kx in 0..k {
                    let row = &columns[((c * k + ky) * k + kx) * oh * ow..][..oh * ow];
                    for oy in 0..oh {
                        let iy = (oy * stride + ky) as isize - pad as isize;
                        if iy < 0 || iy >= height as isize {
                            continue;
                        }
                        let line = &mut plane[iy as usize * width..][..width];
                        for (ox, value) in row[oy * ow..][..ow].iter().enumerate() {
                            let ix = (ox * stride + kx) as isize - pad as isize;
                            if ix >= 0 && ix < width as isize {
                                line[ix as usize] += value;
                            }
                        }
                    }
                }
            }
        }
    }

    pub(super) fn forward(&mut self, params: &[Param], x: &[f32], y: &mut [f32], batch: usize) {
        let (patch, positions) = (self.patch(), self.output.plane());
        let out_channels = self.output.channels;
        let weight = &params[self.weight].value;
        let bias = self.bias.map(|b| params[b].value.as_slice());
        let mut columns = std::mem::take(&mut self.columns);
        columns.resize(batch * patch * positions, 0.0);
        let this = &*self;
        columns
            .par_chunks_mut(patch * positions)
            .zip(y.par_chunks_mut(self.output.len()))
            .zip(x.par_chunks(self.input.len()))
            .for_each(|((cols, out), image)| {
                this.im2col(image, cols);
                for (channel, row) in out.chunks_mut(positions).enumerate() {
                    row.fill(bias.map_or(0.0, |b| b[channel]));
                }
                matmul(
                    (out_channels, patch, positions),
                    out,
                    true,
                    View::rows(weight, patch),
                    View::rows(cols, positions),
                    1,
                );
            });
        self.columns = columns;
    }

    pub(super) fn backward(&self, params: &mut [Param], dy: &[f32], dx: &mut [f32], batch: usize) {
        let (patch, positions) = (self.patch(), self.output.plane());
        let out_channels = self.output.channels;
        let threads = rayon::current_num_threads().max(1);
        let per_thread = batch.div_ceil(threads);
        // Each thread sums the weight and bias gradients of its images; then one sum.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dy
            .par_chunks(per_thread * self.output.len())
            .zip(self.columns.par_chunks(per_thread * patch * positions))
            .map(|(dys, cols)| {
                let mut weight = vec![0.0f32; out_channels * patch];
                let mut bias = vec![0.0f32; out_channels];
                for (d, c) in dys
                    .chunks(self.output.len())
                    .zip(cols.chunks(patch * positions))
                {
                    matmul(
                        (out_channels, positions, patch),
                        &mut weight,
                        true,
                        View::rows(d, positions),
                        View::transposed(c, positions),
                        1,
                    );
                    for (b, row) in bias.iter_mut().zip(d.chunks(positions)) {
                        *b += row.iter().sum::<f32>();
                    }
                }
                (weight, bias)
            })
            .collect();
        for (weight, bias) in partials {
            add_into(&mut params[self.weight].grad, &weight);
            if let Some(index) = self.bias {
                add_into(&mut params[index].grad, &bias);
            }
        }
        if self.first {
            return;
        }
        let weight = &params[self.weight].value;
        dx.par_chunks_mut(self.input.len())
            .zip(dy.par_chunks(self.output.len()))
            .for_each_init(
                || vec![0.0f32; patch * positions],
                |cols, (image, d)| {
                    matmul(
                        (patch, out_channels, positions),
                        cols,
                        false,
                        View::transposed(weight, patch),
                        View::rows(d, positions),
                        1,
                    );
                    self.col2im(cols, image);
                },
            );
    }
}

pub(super) fn add_into(total: &mut [f32], part: &[f32]) {
    for (t, p) in total.iter_mut().zip(part) {
        *t += p;
    }
}

/// Batch norm over the channels of `[N, C, plane]` (a dense layer's features: plane 1).
pub(super) struct BatchNorm {
    pub(super) shape: Shape,
    pub(super) weight: usize,
    pub(super) bias: usize,
    pub(super) running_mean: usize,
    pub(super) running_var: usize,
    /// The normalised input of the last training batch, and each channel's 1/σ.
    pub(super) normalized: Vec<f32>,
    pub(super) inv_std: Vec<f32>,
}

impl BatchNorm {
    /// Per-channel sums over the batch of `f(i)` for every element index `i` of channel c.
    pub(super) fn channel_sums(
        &self,
        batch: usize,
        f: impl Fn(usize) -> (f64, f64) + Sync,
    ) -> Vec<(f64, f64)> {
        let (channels, plane) = (self.shape.channels, self.shape.plane());
        (0..channels)
            .into_par_iter()
            .map(|c| {
                let (mut a, mut b) = (0.0f64, 0.0f64);
                for n in 0..batch {
                    let start = (n * channels + c) * plane;
                    for i in start..start + plane {
                        let (x, y) = f(i);
                        a += x;
                        b += y;
                    }
                }
                (a, b)
            })
            .collect()
    }

    pub(super) fn forward(
        &mut self,
        params: &mut [Param],
        x: &[f32],
        y: &mut [f32],
        batch: usize,
        train: bool,
    ) {
        let (channels, plane) = (self.shape.channels, self.shape.plane());
        let (scale, shift): (Vec<f32>, Vec<f32>) = if train {
            let sums = self.channel_sums(batch, |i| {
                let v = f64::from(x[i]);
                (v, v * v)
            });
            let count = (batch * plane) as f64;
            self.inv_std.clear();
            let mut means = Vec::with_capacity(channels);
            for (c, (sum, sum_sq)) in sums.into_iter().enumerate() {
                let mean = sum / count;
                let var = (sum_sq / count - mean * mean).max(0.0);
                means.push(mean as f32);
                self.inv_std
                    .push((1.0 / (var + f64::from(BATCH_NORM_EPS)).sqrt()) as f32);
                let unbiased = var * count / (count - 1.0).max(1.0);
                let running = &mut params[self.running_mean].value[c];
                *running =
                    *running * (1.0 - BATCH_NORM_MOMENTUM) + BATCH_NORM_MOMENTUM * mean as f32;
                let running = &mut params[self.running_var].value[c];
                *running =
                    *running * (1.0 - BATCH_NORM_MOMENTUM) + BATCH_NORM_MOMENTUM * unbiased as f32;
            }
            self.normalized.resize(x.len(), 0.0);
            let inv_std = &self.inv_std;
            self.normalized
                .par_chunks_mut(channels * plane)
                .zip(x.par_chunks(channels * plane))
                .for_each(|(out, image)| {
                    for c in 0..channels {
                        let (m, s) = (means[c], inv_std[c]);
                        for (o, v) in out[c * plane..][..plane]
                            .iter_mut()
                            .zip(&image[c * plane..][..plane])
                        {
                            *o = (v - m) * s;
                        }
                    }
                });
            (
                params[self.weight].value.clone(),
                params[self.bias].value.clone(),
            )
        } else {
            let gamma = &params[self.weight].value;
            let beta = &params[self.bias].value;
            let mean = &params[self.running_mean].value;
            let var = &params[self.running_var].value;
            (0..channels)
                .map(|c| {
                    let s = gamma[c] / (var[c] + BATCH_NORM_EPS).sqrt();
                    (s, beta[c] - mean[c] * s)
                })
                .unzip()
        };
        let source: &[f32] = if train { &self.normalized } else { x };
        y.par_chunks_mut(channels * plane)
            .zip(source.par_chunks(channels * plane))
            .for_each(|(out, image)| {
                for c in 0..channels {
                    let (a, b) = (scale[c], shift[c]);
                    for (o, v) in out[c * plane..][..plane]
                        .iter_mut()
                        .zip(&image[c * plane..][..plane])
                    {
                        *o = v * a + b;
                    }
                }
            });
    }

    pub(super) fn backward(&self, params: &mut [Param], dy: &[f32], dx: &mut [f32], batch: usize) {
        let (channels, plane) = (self.shape.channels, self.shape.plane());
        let normalized = &self.normalized;
        let sums = self.channel_sums(batch, |i| {
            (
                f64::from(dy[i]),
                f64::from(dy[i]) * f64::from(normalized[i]),
            )
        });
        let count = (batch * plane) as f32;
        let gamma = &params[self.weight].value;
        let coefficients: Vec<(f32, f32, f32)> = sums
            .iter()
            .enumerate()
            .map(|(c, (dbeta, dgamma))| {
                let scale = gamma[c] * self.inv_std[c];
                (scale, *dbeta as f32 / count, *dgamma as f32 / count)
            })
            .collect();
        dx.par_chunks_mut(channels * plane)
            .zip(dy.par_chunks(channels * plane))
            .zip(normalized.par_chunks(channels * plane))
            .for_each(|((out, d), norm)| {
                for (c, (scale, mean_dy, mean_dy_norm)) in coefficients.iter().enumerate() {
                    let range = c * plane..(c + 1) * plane;
                    for ((o, g), n) in out[range.clone()]
                        .iter_mut()
                        .zip(&d[range.clone()])
                        .zip(&norm[range])
                    {
                        *o = scale * (g - mean_dy - n * mean_dy_norm);
                    }
                }
            });
        for (c, (dbeta, dgamma)) in sums.into_iter().enumerate() {
            params[self.bias].grad[c] += dbeta as f32;
            params[self.weight].grad[c] += dgamma as f32;
        }
    }
}

pub(super) struct MaxPool {
    pub(super) input: Shape,
    pub(super) size: usize,
    /// For every output element, the index of its maximum in the batch's input.
    pub(super) argmax: Vec<u32>,
}

impl MaxPool {
    pub(super) fn forward(&mut self, x: &[f32], y: &mut [f32], batch: usize) {
        let Shape {
            channels,
            height,
            width,
        } = self.input;
        let s = self.size;
        let (oh, ow) = (height / s, width / s);
        let out_len = channels * oh * ow;
        self.argmax.resize(batch * out_len, 0);
        y.par_chunks_mut(out_len)
            .zip(self.argmax.par_chunks_mut(out_len))
            .enumerate()
            .for_each(|(n, (out, arg))| {
                let base = n * self.input.len();
                for c in 0..channels {
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut best = f32::NEG_INFINITY;
                            let mut at = 0;
                            for dy in 0..s {
                                let row = base + (c * height + oy * s + dy) * width + ox * s;
                                for (i, v) in x[row..row + s].iter().enumerate() {
                                    if *v > best {
                                        best = *v;
                                        at = row + i;
                                    }
                                }
                            }
                            let o = (c * oh + oy) * ow + ox;
                            out[o] = best;
                            arg[o] = at as u32;
                        }
                    }
                }
            });
    }

    pub(super) fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        let s = self.size;
        let in_len = self.input.len();
        let out_len = self.input.channels * (self.input.height / s) * (self.input.width / s);
        dx.par_chunks_mut(in_len)
            .zip(dy.par_chunks(out_len))
            .zip(self.argmax.par_chunks(out_len))
            .enumerate()
            .for_each(|(n, ((image, d), arg))| {
                image.fill(0.0);
                let base = n * in_len;
                for (g, at) in d.iter().zip(arg) {
                    image[*at as usize - base] += g;
                }
            });
    }
}

pub(super) struct Dense {
    pub(super) inputs: usize,
    pub(super) units: usize,
    pub(super) weight: usize,
    pub(super) bias: usize,
}

impl Dense {
    pub(super) fn forward(&self, params: &[Param], x: &[f32], y: &mut [f32], batch: usize) {
        let bias = &params[self.bias].value;
        for row in y.chunks_mut(self.units) {
            row.copy_from_slice(bias);
        }
        matmul(
            (batch, self.inputs, self.units),
            y,
            true,
            View::rows(x, self.inputs),
            View::transposed(&params[self.weight].value, self.inputs),
            rayon::current_num_threads(),
        );
    }

    pub(super) fn backward(
        &self,
        params: &mut [Param],
        x: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        batch: usize,
    ) {
        let threads = rayon::current_num_threads();
        matmul(
            (self.units, batch, self.inputs),
            &mut params[self.weight].grad,
            true,
            View::transposed(dy, self.units),
            View::rows(x, self.inputs),
            threads,
        );
        let bias = &mut params[self.bias].grad;
        for row in dy.chunks(self.units) {
            add_into(bias, row);
        }
        matmul(
            (batch, self.units, self.inputs),
            dx,
            false,
            View::rows(dy, self.units),
            View::rows(&params[self.weight].value, self.inputs),
            threads,
        );
    }
}

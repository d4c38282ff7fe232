//! The layers MobileNet adds to the CNN's: depthwise convolution and global average
//! pooling, forward and backward.

use rayon::prelude::*;

use super::{Shape, add_into};
use crate::vision::network::Param;

/// A depthwise convolution: each channel convolved with its own `kernel`×`kernel` filter
/// (PyTorch's `groups = channels`), without bias. Direct loops: a filter has only
/// `kernel²` weights, too few for a matrix product to pay.
pub(in crate::vision::network) struct Depthwise {
    pub(in crate::vision::network) input: Shape,
    pub(in crate::vision::network) output: Shape,
    pub(in crate::vision::network) kernel: usize,
    pub(in crate::vision::network) padding: usize,
    pub(in crate::vision::network) stride: usize,
    pub(in crate::vision::network) weight: usize,
    pub(in crate::vision::network) first: bool,
}

impl Depthwise {
    /// The input row and column an output position and kernel offset read, if inside.
    fn source(&self, out: usize, offset: usize, size: usize) -> Option<usize> {
        (out * self.stride + offset)
            .checked_sub(self.padding)
            .filter(|&i| i < size)
    }

    pub(in crate::vision::network) fn forward(&self, params: &[Param], x: &[f32], y: &mut [f32]) {
        let weight = &params[self.weight].value;
        let (input, output, k) = (self.input, self.output, self.kernel);
        y.par_chunks_mut(output.plane())
            .zip(x.par_chunks(input.plane()))
            .enumerate()
            .for_each(|(index, (out, plane))| {
                let filter = &weight[(index % input.channels) * k * k..][..k * k];
                out.fill(0.0);
                for ky in 0..k {
                    for oy in 0..output.height {
                        let Some(iy) = self.source(oy, ky, input.height) else {
                            continue;
                        };
                        let line = &plane[iy * input.width..][..input.width];
                        let row = &mut out[oy * output.width..][..output.width];
                        for kx in 0..k {
                            let w = filter[ky * k + kx];
                            for (ox, o) in row.iter_mut().enumerate() {
                                if let Some(ix) = self.source(ox, kx, input.width) {
                                    *o += w * line[ix];
                                }
                            }
                        }
                    }
                }
            });
    }

    pub(in crate::vision::network) fn backward(
        &self,
        params: &mut [Param],
        x: &[f32],
        dy: &[f32],
        dx: &mut [f32],
        batch: usize,
    ) {
        let (input, output, k) = (self.input, self.output, self.kernel);
        let channels = input.channels;
        // Weight gradients: one filter per channel, summed over the batch.
        let gradients: Vec<Vec<f32>> = (0..channels)
            .into_par_iter()
            .map(|c| {
                let mut filter = vec![0.0f32; k * k];
                for n in 0..batch {
                    let plane = &x[(n * channels + c) * input.plane()..][..input.plane()];
                    let d = &dy[(n * channels + c) * output.plane()..][..output.plane()];
                    for ky in 0..k {
                        for kx in 0..k {
                            let mut sum = 0.0f32;
                            for oy in 0..output.height {
                                let Some(iy) = self.source(oy, ky, input.height) else {
                                    continue;
                                };
                                for ox in 0..output.width {
                                    if let Some(ix) = self.source(ox, kx, input.width) {
                                        sum += d[oy * output.width + ox]
                                            * plane[iy * input.width + ix];
                                    }
                                }
                            }
                            filter[ky * k + kx] += sum;
                        }
                    }
                }
                filter
            })
            .collect();
        for (c, filter) in gradients.iter().enumerate() {
            add_into(&mut params[self.weight].grad[c * k * k..][..k * k], filter);
        }
        if self.first {
            return;
        }
        let weight = &params[self.weight].value;
        dx.par_chunks_mut(input.plane())
            .zip(dy.par_chunks(output.plane()))
            .enumerate()
            .for_each(|(index, (plane, d))| {
                let filter = &weight[(index % channels) * k * k..][..k * k];
                plane.fill(0.0);
                for ky in 0..k {
                    for oy in 0..output.height {
                        let Some(iy) = self.source(oy, ky, input.height) else {
                            continue;
                        };
                        for kx in 0..k {
                            let w = filter[ky * k + kx];
                            for ox in 0..output.width {
                                if let Some(ix) = self.source(ox, kx, input.width) {
                                    plane[iy * input.width + ix] += w * d[oy * output.width + ox];
                                }
                            }
                        }
                    }
                }
            });
    }
}

/// The mean of each channel's plane: `[N, C, H, W]` to `[N, C]`.
pub(in crate::vision::network) struct GlobalAveragePool {
    pub(in crate::vision::network) input: Shape,
}

impl GlobalAveragePool {
    pub(in crate::vision::network) fn forward(&self, x: &[f32], y: &mut [f32]) {
        let plane = self.input.plane();
        y.par_iter_mut()
            .zip(x.par_chunks(plane))
            .for_each(|(o, values)| *o = values.iter().sum::<f32>() / plane as f32);
    }

    pub(in crate::vision::network) fn backward(&self, dy: &[f32], dx: &mut [f32]) {
        let plane = self.input.plane();
        dx.par_chunks_mut(plane)
            .zip(dy.par_iter())
            .for_each(|(values, g)| values.fill(g / plane as f32));
    }
}

//! Vision models: a digit CNN trained and evaluated here (our own layers), YOLO detection
//! (ONNX Runtime) and CLIP (candle), with the datasets, augmentation and image
//! preprocessing. They run on the CPU in-process, so they can be
//! evaluated like prompts and called as tools.

pub mod augment;
pub mod clip;
pub mod cnn;
pub mod dataset;
pub mod detect;
pub mod image_input;
pub mod mobilenet;
mod network;
pub mod train;

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum VisionError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

impl VisionError {
    pub fn file(path: impl Into<PathBuf>, message: impl Into<String>) -> VisionError {
        VisionError::File {
            path: path.into(),
            message: message.into(),
        }
    }
}

//! Metrics that are pure arithmetic over labels and boxes, computed the way the reference
//! libraries do (scikit-learn, pycocotools). Training a vision model and scoring an eval
//! set both use them, so they sit below both.

pub mod boxes;
pub mod classification;

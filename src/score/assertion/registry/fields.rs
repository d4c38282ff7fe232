//! The fields only some assertion types take, what stands in for a missing `value`, and
//! what a run must supply to check a type.

use super::AssertionSpec;

/// An optional field of [`AssertionSpec`] that only some types take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Threshold,
    Path,
    Min,
    Max,
    Iou,
    Provider,
}

impl Field {
    /// In the order they are checked, so a spec with two stray fields names the same one
    /// every time.
    pub(in crate::score::assertion) const ALL: [Field; 6] = [
        Field::Threshold,
        Field::Path,
        Field::Min,
        Field::Max,
        Field::Iou,
        Field::Provider,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Threshold => "threshold",
            Field::Path => "path",
            Field::Min => "min",
            Field::Max => "max",
            Field::Iou => "iou",
            Field::Provider => "provider",
        }
    }

    pub(in crate::score::assertion) fn is_set(self, spec: &AssertionSpec) -> bool {
        match self {
            Field::Threshold => spec.threshold.is_some(),
            Field::Path => spec.path.is_some(),
            Field::Min => spec.min.is_some(),
            Field::Max => spec.max.is_some(),
            Field::Iou => spec.iou.is_some(),
            Field::Provider => spec.provider.is_some(),
        }
    }
}

/// How the case's `expected` answer stands in for a missing `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reference {
    /// As it is: the text to compare with.
    Expected,
    /// Worded as a criterion, for a judge that checks one (`model-graded-closedqa`).
    ExpectedAsCriterion,
}

impl Reference {
    /// The `value` made of the case's expected answer.
    pub fn value_from(self, expected: &str) -> String {
        match self {
            Reference::Expected => expected.to_owned(),
            Reference::ExpectedAsCriterion => {
                format!("The submission gives the same answer as this reference answer: {expected}")
            }
        }
    }
}

/// What a run must supply, besides the output, to check an assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Nothing but the output.
    Output,
    /// The generation's measured latency (a cached reply has none).
    Latency,
    /// A chat model from the catalog that judges: `AssertionKind::ModelGraded`.
    JudgeModel,
    /// A `kind: embedding` model from the catalog: `AssertionKind::Similar`.
    EmbeddingModel,
}

impl Needs {
    pub(in crate::score::assertion) fn help(self) -> &'static str {
        match self {
            Needs::Output => "",
            Needs::Latency => "a measured latency (a cached reply has none)",
            Needs::JudgeModel => "a judge model",
            Needs::EmbeddingModel => "an embedding model",
        }
    }
}

//! Planning the judge phase: which judge model each model-graded assertion gets (its own
//! `provider`, else `--judge`, else the eval set's `judge`), each judge checked like any
//! run model, and the judge templates in use.

use super::{PlanError, check_model_file};
use crate::catalog::ModelRef;
use crate::engine::GenerationRequest;
use crate::project::Project;
use crate::prompt::Prompt;
use crate::run::PlannedCell;
use crate::score::assertion::AssertionKind;
use crate::score::judge::{GRADERS, Grader};

/// The judges a run needs, resolved and checked when the run is planned.
#[derive(Debug, Clone, Default)]
pub struct JudgePlan {
    pub models: Vec<ModelRef>,
    /// Per model: what identifies it in cache keys.
    identities: Vec<String>,
    /// The judge templates in use: the project's `prompts/judge-*.yaml` or the built-in ones.
    prompts: Vec<(Grader, Prompt)>,
}

impl JudgePlan {
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }

    pub fn prompt(&self, grader: Grader) -> Option<&Prompt> {
        self.prompts
            .iter()
            .find(|(g, _)| *g == grader)
            .map(|(_, p)| p)
    }

    /// The judge model names, for messages.
    pub fn model_names(&self) -> Vec<&str> {
        self.models.iter().map(|m| m.name.as_str()).collect()
    }
}

/// Which judge an assertion gets: its own `provider`, else `--judge`, else the eval set's
/// `judge`.
pub(in crate::run) fn choose_judge(
    own: Option<&str>,
    run: Option<&str>,
    eval_set: Option<&str>,
) -> Option<String> {
    own.or(run).or(eval_set).map(str::to_string)
}

/// Resolves and checks the judge models named by the planned cells, and picks the judge
/// templates. A judge must be a chat model: one without a chat template is a base model
/// that cannot follow a grading instruction, so it is refused here.
pub(in crate::run) fn plan_judging(
    project: &Project,
    eval_set_path: &std::path::Path,
    cells: &[PlannedCell],
) -> Result<JudgePlan, PlanError> {
    let mut names: Vec<String> = Vec::new();
    let mut graders: Vec<Grader> = Vec::new();
    for assertion in cells.iter().flat_map(|c| &c.assertions) {
        if let AssertionKind::ModelGraded { grader, judge, .. } = &assertion.kind {
            if let Some(name) = judge
                && !names.contains(name)
            {
                names.push(name.clone());
            }
            if !graders.contains(grader) {
                graders.push(*grader);
            }
        }
    }
    let mut plan = JudgePlan::default();
    for name in names {
        let (model, identity) = resolve_judge(project, eval_set_path, &name)?;
        plan.models.push(model);
        plan.identities.push(identity);
    }
    for grader in GRADERS.into_iter().filter(|g| graders.contains(g)) {
        let prompt = match project.prompts.select(grader.prompt_name()).first() {
            Some(p) => (*p).clone(),
            None => grader.builtin_prompt()?,
        };
        if let Some(schema) = &prompt.schema {
            crate::engine::llama::schema_to_grammar(schema).map_err(|e| PlanError::Invalid {
                path: prompt.source.clone(),
                message: format!("judge prompt `{}`: schema: {e}", prompt.id),
            })?;
        }
        plan.prompts.push((grader, prompt));
    }
    Ok(plan)
}

/// Resolves a judge model by catalog name and checks that it can judge: a GGUF chat
/// model. Returns it with its identity for cache keys.
pub(in crate::run) fn resolve_judge(
    project: &Project,
    eval_set_path: &std::path::Path,
    name: &str,
) -> Result<(ModelRef, String), PlanError> {
    let model = project
        .catalog
        .resolve(name)
        .map_err(|source| PlanError::Catalog {
            path: eval_set_path.to_path_buf(),
            source,
        })?;
    let refuse = |why: &str| PlanError::Model {
        model: name.to_string(),
        message: format!("cannot judge: {why}"),
    };
    if model
        .entry
        .as_ref()
        .is_some_and(|e| !e.kind().is_language_model())
    {
        return Err(refuse("it is not a language model"));
    }
    let (has_template, identity) = check_model_file(&model)?;
    if !has_template {
        return Err(refuse(
            "its GGUF has no chat template, so it is a base model, not an instruction-tuned chat model that can follow a grading rubric; choose an -Instruct model",
        ));
    }
    Ok((model, identity))
}

impl JudgePlan {
    /// One judge model and no templates (pairwise comparison brings its own).
    pub(in crate::run) fn single(model: ModelRef, identity: String) -> JudgePlan {
        JudgePlan {
            models: vec![model],
            identities: vec![identity],
            prompts: Vec::new(),
        }
    }

    pub(in crate::run) fn identity(&self, model: usize) -> &str {
        &self.identities[model]
    }

    /// The request for judge `model` with a rendered judge template: the catalog's
    /// parameters for that model under the template's own, and the template's schema.
    pub(in crate::run) fn request(
        &self,
        model: usize,
        template: &Prompt,
        rendered: crate::prompt::RenderedPrompt,
    ) -> GenerationRequest {
        let model_params = self.models[model]
            .entry
            .as_ref()
            .map(|e| e.params().clone())
            .unwrap_or_default();
        GenerationRequest {
            prompt: rendered,
            params: model_params.overlay(&template.params).resolve(),
            schema: template.schema.clone(),
            grammar: None,
            tools: None,
        }
    }
}

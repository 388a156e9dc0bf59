//! What the planner knows of a model named by the caller: the labels of its
//! deployments in production, else what its name says (`llama-3-70b-fp8`).
//! Each fact says where it came from, so that an answer never passes a guess
//! off as a measurement.

use std::fmt::Write as _;

use serde::Serialize;

use super::PlacementQuery;
use crate::compose::{Deployment, bytes_per_param};

/// A model's size and shape, and where each came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelFacts {
    /// The name or path asked for.
    pub model: String,
    pub params_b: Option<f64>,
    pub dtype: Option<String>,
    pub num_attention_heads: Option<u32>,
    pub num_kv_heads: Option<u32>,
    /// Production deployments of it (`machine:port`), whose labels were read.
    pub deployments: Vec<String>,
    /// TP sizes those deployments use, ascending.
    pub tensor_parallel_in_use: Vec<u32>,
    /// Where each fact came from, in words.
    pub basis: Vec<String>,
}

/// Most deployments a model's facts name (the rest only count).
const NAMED_DEPLOYMENTS: usize = 5;

impl ModelFacts {
    /// What `deployments` (production's) and the name say of `model`.
    pub fn of<'d>(
        model: &str,
        deployments: impl IntoIterator<Item = &'d Deployment>,
    ) -> ModelFacts {
        let mut facts = ModelFacts::in_production(model, deployments);
        facts.estimate_from_name();
        facts
    }

    /// What `deployments` (production's) say of `model`: a deployment is of
    /// it when its main service's model name or path, or the path's last
    /// component, is `model` (ignoring case).
    pub fn in_production<'d>(
        model: &str,
        deployments: impl IntoIterator<Item = &'d Deployment>,
    ) -> ModelFacts {
        let wanted = model.trim().trim_end_matches('/').to_ascii_lowercase();
        let mut facts = ModelFacts {
            model: model.to_owned(),
            ..ModelFacts::default()
        };
        let mut found = 0usize;
        for deployment in deployments {
            let Some(service) = deployment.main_service() else {
                continue;
            };
            let names_it = [&service.model_name, &service.model_path]
                .into_iter()
                .flatten()
                .any(|name| {
                    let name = name.trim_end_matches('/').to_ascii_lowercase();
                    name == wanted || name.rsplit('/').next() == Some(wanted.as_str())
                });
            if !names_it {
                continue;
            }
            found += 1;
            if facts.deployments.len() < NAMED_DEPLOYMENTS {
                facts.deployments.push(deployment.id.to_string());
            }
            facts.params_b = facts.params_b.or(service.params_b);
            facts.dtype = facts
                .dtype
                .take()
                .or_else(|| service.dtype.as_deref().map(str::to_owned));
            facts.num_attention_heads = facts.num_attention_heads.or(service.num_attention_heads);
            facts.num_kv_heads = facts.num_kv_heads.or(service.num_kv_heads);
            if !facts
                .tensor_parallel_in_use
                .contains(&service.tensor_parallel)
            {
                facts.tensor_parallel_in_use.push(service.tensor_parallel);
            }
        }
        facts.tensor_parallel_in_use.sort_unstable();
        if found > 0 {
            let mut shown = facts.deployments.join(", ");
            if found > facts.deployments.len() {
                let _ = write!(shown, " and {} more", found - facts.deployments.len());
            }
            facts
                .basis
                .push(format!("labels of its production deployments ({shown})"));
        }
        facts
    }

    /// Takes from `other` what these facts do not say yet, and says where
    /// it came from (`basis`) if it gave anything.
    pub fn supplement(&mut self, other: &ModelFacts, basis: &str) {
        let before = self.clone();
        self.params_b = self.params_b.or(other.params_b);
        if self.dtype.is_none() {
            self.dtype.clone_from(&other.dtype);
        }
        self.num_attention_heads = self.num_attention_heads.or(other.num_attention_heads);
        self.num_kv_heads = self.num_kv_heads.or(other.num_kv_heads);
        if *self != before {
            self.basis.push(basis.to_owned());
        }
    }

    /// The size and dtype the name states, where nothing else said them;
    /// marked as an estimate.
    pub fn estimate_from_name(&mut self) {
        let name = self.model.trim().trim_end_matches('/').to_ascii_lowercase();
        if self.params_b.is_none()
            && let Some(params) = params_from_name(&name)
        {
            self.params_b = Some(params);
            self.basis.push(format!(
                "{params} B parameters read from the name (an estimate: give params_b to be exact)"
            ));
        }
        if self.dtype.is_none()
            && let Some(dtype) = dtype_from_name(&name)
        {
            self.dtype = Some(dtype.to_owned());
            self.basis.push(format!("dtype {dtype} read from the name"));
        }
    }

    /// `llama-3-70b: 70.6 B parameters, dtype auto (labels of ...)`, the
    /// model shown as `shown` (the caller escapes what it was given).
    pub fn summary(&self, shown: &str) -> String {
        let mut line = format!(
            "{shown}: {} B parameters, dtype {}",
            self.params_b
                .map_or_else(|| "?".to_owned(), |p| p.to_string()),
            self.dtype.as_deref().unwrap_or("auto")
        );
        if !self.basis.is_empty() {
            let _ = write!(line, " ({})", self.basis.join("; "));
        }
        line
    }

    /// `query` with what it leaves out taken from these facts.
    pub fn fill(&self, query: &mut PlacementQuery) {
        query.params_b = query.params_b.or(self.params_b);
        if query.dtype.is_none() {
            query.dtype.clone_from(&self.dtype);
        }
        query.num_attention_heads = query.num_attention_heads.or(self.num_attention_heads);
        query.num_kv_heads = query.num_kv_heads.or(self.num_kv_heads);
    }
}

/// The parts of a model name: `meta-llama/Llama-3.1-70B-Instruct` is
/// `meta`, `llama`, `llama`, `3.1`, `70b`, `instruct`.
fn tokens(name: &str) -> impl Iterator<Item = &str> {
    name.split(['-', '_', '/', ' ', ':'])
        .filter(|token| !token.is_empty())
}

/// Billions of parameters a name states: `70b`, `0.5b`, `8x7b` (experts
/// times their size: an upper bound of the weights). The last such part wins
/// (`llama-2-7b-…-13b` is unusual; the size usually comes late).
pub fn params_from_name(name: &str) -> Option<f64> {
    let size = |text: &str| -> Option<f64> {
        let number = text.strip_suffix(['b', 'B'])?;
        let valid = !number.is_empty()
            && number.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && number.bytes().next().is_some_and(|b| b.is_ascii_digit());
        valid.then(|| number.parse::<f64>().ok()).flatten()
    };
    tokens(name)
        .filter_map(|token| match token.split_once(['x', 'X']) {
            Some((experts, each)) if experts.bytes().all(|b| b.is_ascii_digit()) => {
                Some(experts.parse::<f64>().ok()? * size(each)?)
            }
            _ => size(token),
        })
        .filter(|params| *params > 0.0 && params.is_finite())
        .last()
}

/// A weight dtype or quantisation a name states (`fp8`, `awq`, `int4`).
pub fn dtype_from_name(name: &str) -> Option<&str> {
    tokens(name)
        .filter(|token| *token != "auto" && bytes_per_param(token).is_some())
        .last()
}

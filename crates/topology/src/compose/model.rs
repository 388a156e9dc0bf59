//! Parallelism (contract section 2.2) and model identity and size (2.3).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{Kv, Reader, ServerKind, Service, Token};
use crate::finding::Rule;

impl Reader<'_> {
    pub(super) fn parallelism(
        &mut self,
        name: &str,
        argv: &[Token],
        env: &BTreeMap<String, Kv>,
        labels: &BTreeMap<String, Kv>,
        service: &mut Service,
    ) {
        const TP: &[&str] = &[
            "--tensor-parallel-size",
            "-tp",
            "--tp-size",
            "--tp",
            "--num-shard",
            "--tp_size",
        ];
        const PP: &[&str] = &["--pipeline-parallel-size", "-pp", "--pp-size", "--pp_size"];
        const DP: &[&str] = &["--data-parallel-size", "-dp", "--dp-size", "--dp"];
        // Command first; TGI's NUM_SHARD only when the command does not say
        // (the CLI flag wins over the environment, as in TGI itself); labels win.
        let mut tp = flag_value(argv, TP).map(|t| (t.text.clone(), t.pos));
        if tp.is_none()
            && let Some(Kv {
                value: Some(v),
                pos,
            }) = env.get("NUM_SHARD")
        {
            tp = Some((v.clone(), *pos));
        }
        let pp = flag_value(argv, PP).map(|t| (t.text.clone(), t.pos));
        let dp = flag_value(argv, DP).map(|t| (t.text.clone(), t.pos));
        let label = |key: &str| match labels.get(key) {
            Some(Kv {
                value: Some(v),
                pos,
            }) => Some((v.clone(), *pos)),
            _ => None,
        };
        let tp = label("catapult.tensor_parallel").or(tp);
        let pp = label("catapult.pipeline_parallel").or(pp);
        let dp = label("catapult.data_parallel").or(dp);
        for (value, slot, slot_at, what) in [
            (
                tp,
                &mut service.tensor_parallel,
                &mut service.tensor_parallel_at,
                "tensor parallel size",
            ),
            (
                pp,
                &mut service.pipeline_parallel,
                &mut service.pipeline_parallel_at,
                "pipeline parallel size",
            ),
            (
                dp,
                &mut service.data_parallel,
                &mut service.data_parallel_at,
                "data parallel size",
            ),
        ] {
            let Some((text, pos)) = value else { continue };
            match text.trim().parse::<u32>() {
                Ok(n) if n >= 1 => {
                    *slot = n;
                    *slot_at = Some(pos);
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: the {what} must be a positive integer, found `{text}`",
                        self.path
                    );
                    self.push(
                        Rule::Rc002,
                        vec![format!("services.{name}.{what}")],
                        pos,
                        message,
                    );
                }
            }
        }
    }

    // -- model (section 2.3) ------------------------------------------------

    pub(super) fn model(
        &mut self,
        name: &str,
        argv: &[Token],
        env: &BTreeMap<String, Kv>,
        labels: &BTreeMap<String, Kv>,
        entrypoint_given: bool,
        service: &mut Service,
    ) {
        let label = |key: &str| match labels.get(key) {
            Some(Kv {
                value: Some(v),
                pos,
            }) => Some((v.trim().to_owned(), *pos)),
            _ => None,
        };
        // The loaded model: its flag, else the positional argument. Shell
        // placeholders (`$1`, `"$@"` left unexpanded) are never a model.
        let loaded = flag_value(argv, &["--model", "--model-path", "--model-id"])
            .or_else(|| {
                positional_model(argv, !entrypoint_given && image_serves_positional(service))
            })
            .map(|t| t.text.clone())
            .filter(|m| !is_shell_placeholder(m));
        // vLLM and SGLang name the model they serve `--served-model-name`
        // (its first value); one still holding `${` did not interpolate
        // (RC003 says why) and names nothing.
        let served = flag_value(argv, &["--served-model-name"])
            .map(|t| t.text.clone())
            .filter(|m| !m.starts_with('-') && !is_shell_placeholder(m) && !m.contains("${"));
        let env_model = ["MODEL", "MODEL_ID"]
            .iter()
            .find_map(|k| match env.get(*k) {
                Some(Kv { value: Some(v), .. }) if !v.trim().is_empty() => {
                    Some(v.trim().to_owned())
                }
                _ => None,
            });
        service.model_name = label("catapult.model")
            .map(|(v, _)| v)
            .or(served)
            .or_else(|| loaded.clone())
            .or(env_model)
            .map(Arc::from);
        service.model_path = label("catapult.model_path")
            .map(|(v, _)| v)
            .or(loaded)
            .map(Arc::from);

        if let Some((text, pos)) = label("catapult.params_b") {
            match text.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => {
                    service.params_b = Some(v);
                    service.params_b_at = Some(pos);
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: label catapult.params_b must be a positive number of billions of parameters, found `{text}`",
                        self.path
                    );
                    self.push(
                        Rule::Rc002,
                        vec![format!("services.{name}.labels.catapult.params_b")],
                        pos,
                        message,
                    );
                }
            }
        }
        // Quantisation decides the weight bytes more than the activation dtype.
        service.dtype = label("catapult.dtype")
            .map(|(v, _)| v)
            .or_else(|| flag_value(argv, &["--quantization", "-q"]).map(|t| t.text.clone()))
            .or_else(|| flag_value(argv, &["--dtype"]).map(|t| t.text.clone()))
            .map(Arc::from);
        for key in ["catapult.num_attention_heads", "catapult.num_kv_heads"] {
            let Some((text, pos)) = label(key) else {
                continue;
            };
            match text.parse::<u32>() {
                Ok(v) if v > 0 => {
                    let at = Some(pos);
                    if key == "catapult.num_kv_heads" {
                        service.num_kv_heads = Some(v);
                        service.num_kv_heads_at = at;
                    } else {
                        service.num_attention_heads = Some(v);
                        service.num_attention_heads_at = at;
                    }
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: label {key} must be a positive integer, found `{text}`",
                        self.path
                    );
                    self.push(
                        Rule::Rc002,
                        vec![format!("services.{name}.labels.{key}")],
                        pos,
                        message,
                    );
                }
            }
        }
        if let Some(token) =
            flag_value(argv, &["--gpu-memory-utilization", "--mem-fraction-static"])
        {
            match token.text.trim().parse::<f64>() {
                Ok(v) if v > 0.0 && v <= 1.0 => {
                    service.memory_utilization = v;
                    service.memory_utilization_at = Some(token.pos);
                }
                _ => {
                    let message = format!(
                        "{}: service `{name}`: the GPU memory fraction must be a number in (0, 1], found `{}`",
                        self.path, token.text
                    );
                    let pos = token.pos;
                    self.push(
                        Rule::Rc002,
                        vec![format!("services.{name}.memory_utilization")],
                        pos,
                        message,
                    );
                }
            }
        }
    }
}

/// The value of the last occurrence of any of `names`. `--flag=value` has been
/// split into two tokens already (`split_inline_values`), so both forms match.
/// Long flags match with `_` and `-` interchangeable, as vLLM accepts both.
pub(super) fn flag_value<'t>(argv: &'t [Token], names: &[&str]) -> Option<&'t Token> {
    let mut found = None;
    let mut i = 0;
    while let Some(token) = argv.get(i) {
        if token.text.starts_with('-')
            && names.iter().any(|n| flag_eq(&token.text, n))
            && let Some(next) = argv.get(i + 1)
        {
            found = Some(next);
            i += 1;
        }
        i += 1;
    }
    found
}

pub(super) fn flag_eq(flag: &str, name: &str) -> bool {
    if flag == name {
        return true;
    }
    flag.starts_with("--")
        && name.starts_with("--")
        && flag.len() == name.len()
        && flag
            .bytes()
            .zip(name.bytes())
            .all(|(a, b)| a == b || (a == b'_' && b == b'-') || (a == b'-' && b == b'_'))
}

/// `$@`, `$1`, `${1}`, `$*`: an argument the shell fills in.
fn is_shell_placeholder(text: &str) -> bool {
    let inner = text
        .strip_prefix("${")
        .and_then(|t| t.strip_suffix('}'))
        .or_else(|| text.strip_prefix('$'));
    inner.is_some_and(|t| {
        matches!(t, "@" | "*") || (!t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// `vllm/vllm-openai` images whose own entrypoint is `vllm serve`, given
/// no `entrypoint:`: the first word of `command` is the model.
fn image_serves_positional(service: &Service) -> bool {
    service.server == Some(ServerKind::Vllm)
        && service
            .image
            .as_deref()
            .is_some_and(|i| i.rsplit('/').next().unwrap_or(i).starts_with("vllm-openai"))
}

/// `vllm serve <model>`, `trtllm-serve [serve] <model>`, and with
/// `first_is_model` (an image whose entrypoint is `vllm serve`) a first word
/// that is no flag.
pub(super) fn positional_model(argv: &[Token], first_is_model: bool) -> Option<&Token> {
    if first_is_model
        && let Some(first) = argv.first()
        && !first.text.starts_with('-')
        && !matches!(first.text.as_str(), "vllm" | "python" | "python3")
        && !first.text.contains("vllm.entrypoints")
    {
        return Some(first);
    }
    for (i, token) in argv.iter().enumerate() {
        let base = token.text.rsplit('/').next().unwrap_or(&token.text);
        let after = if base == "vllm" && argv.get(i + 1).is_some_and(|t| t.text == "serve") {
            i + 2
        } else if base == "trtllm-serve" {
            if argv.get(i + 1).is_some_and(|t| t.text == "serve") {
                i + 2
            } else {
                i + 1
            }
        } else {
            continue;
        };
        return argv.get(after).filter(|t| !t.text.starts_with('-'));
    }
    None
}

pub(super) fn detect_server(argv: &[Token], image: Option<&str>) -> Option<ServerKind> {
    let from_text = |text: &str| -> Option<ServerKind> {
        let text = text.to_ascii_lowercase();
        if text.contains("trtllm") || text.contains("tensorrt") {
            Some(ServerKind::Trtllm)
        } else if text.contains("sglang") {
            Some(ServerKind::Sglang)
        } else if text.contains("text-generation-launcher")
            || text.contains("text-generation-inference")
        {
            Some(ServerKind::Tgi)
        } else if text.contains("vllm") {
            Some(ServerKind::Vllm)
        } else {
            None
        }
    };
    argv.iter()
        .find_map(|t| from_text(&t.text))
        .or_else(|| image.and_then(from_text))
}

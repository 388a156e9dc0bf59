//! A seeded generator of compose files and `.env` files covering contract
//! section 2: interpolation forms and nesting, anchors and merges, scalar
//! styles, list and map forms, every GPU source, ports in every form, command
//! strings with quotes and shell operators, and the YAML that real files and
//! hostile ones hold. The same seed always gives the same case.

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// One generated deployment: its compose file and optional `.env`.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub compose: String,
    pub env: Option<String>,
}

/// Variables the files use; the `.env` sets some of them.
const VARS: &[&str] = &[
    "TP", "GPUS", "GPU_A", "MODEL", "PORT", "TAG", "EMPTY", "COUNT", "IMAGE", "NAME",
];

pub fn generate(seed: u64) -> Case {
    let mut g = Gen {
        rng: StdRng::seed_from_u64(seed),
        out: String::new(),
    };
    let env = g.rng.random_bool(0.7).then(|| g.env_file());
    let compose = g.compose_file();
    Case {
        name: format!("seed-{seed}"),
        compose,
        env,
    }
}

struct Gen {
    rng: StdRng,
    out: String,
}

impl Gen {
    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items.choose(&mut self.rng).copied().unwrap_or("")
    }

    fn line(&mut self, indent: usize, text: &str) {
        for _ in 0..indent {
            self.out.push(' ');
        }
        self.out.push_str(text);
        self.out.push('\n');
    }

    // -- .env ---------------------------------------------------------------

    fn env_file(&mut self) -> String {
        let mut lines = Vec::new();
        if self.chance(0.3) {
            lines.push("# deployment variables".to_owned());
        }
        for var in VARS {
            if !self.chance(0.55) {
                continue;
            }
            let value = self.env_value(var);
            let line = match self.rng.random_range(0..16) {
                0 => format!("{var}=\"{value}\""),
                1 => format!("{var}='{value}'"),
                2 => format!("export {var}={value}"),
                3 => format!("{var}={value} # a comment"),
                4 => format!("{var} = {value}"),
                5 => format!("{var}: {value}"),
                6 => format!("{var}=\"{value}\"  # quoted, then a comment"),
                7 => format!("{var}=${{TP:-{value}}}"),
                8 => format!("{var}=\"${{TP}}{value}\""),
                9 => format!("{var}='${{TP}}{value}'"),
                10 => format!("{var}={value}#not-a-comment"),
                11 => format!("{var}=\"a\\\"b\""),
                12 => format!("{var}='it\\'s'"),
                13 => format!("{var}=\"{value}\"x"),
                14 => format!("{var}=${{UNSET_IN_ENV}}{value}"),
                _ => format!("{var}={value}"),
            };
            lines.push(line);
            if self.chance(0.1) {
                lines.push(String::new());
            }
        }
        if self.chance(0.02) {
            lines.push("BROKEN='unterminated".to_owned());
        }
        if self.chance(0.02) {
            lines.push("BAD KEY=1".to_owned());
        }
        if self.chance(0.05) {
            lines.push("INHERITED".to_owned());
        }
        let mut text = lines.join("\n");
        if self.chance(0.8) {
            text.push('\n');
        }
        text
    }

    fn env_value(&mut self, var: &str) -> String {
        let value = match var {
            "TP" => self.pick(&["1", "2", "4", "8", "", "2.0", "x"]),
            "GPUS" => self.pick(&["0", "0,1", "2,3", "all", "", " 1 ", "none", "4,5,6,7"]),
            "GPU_A" => self.pick(&["0", "1", "3", "GPU-8a1b2c", ""]),
            "MODEL" => self.pick(&[
                "meta-llama/Llama-3.1-8B-Instruct",
                "Qwen/Qwen2.5-72B",
                "/models/llama",
                "",
                "a b",
            ]),
            "PORT" => self.pick(&["8000", "30000", "80", "9000", "", "x"]),
            "TAG" => self.pick(&["latest", "v0.6.3", ""]),
            "COUNT" => self.pick(&["1", "2", "all", "-1", ""]),
            "IMAGE" => self.pick(&["vllm/vllm-openai", "lmsysorg/sglang", ""]),
            "NAME" => self.pick(&["llama", "qwen", "", "my model"]),
            _ => self.pick(&["", "1", "value"]),
        };
        value.to_owned()
    }

    // -- compose file -------------------------------------------------------

    fn compose_file(&mut self) -> String {
        self.out.clear();
        if self.chance(0.1) {
            self.line(0, "# compose file");
        }
        if self.chance(0.05) {
            self.line(0, "---");
        }
        let anchored = self.chance(0.3);
        if anchored {
            self.line(0, "x-common: &common");
            let image = self.image();
            self.line(2, &format!("image: {image}"));
            if self.chance(0.5) {
                self.line(2, "restart: unless-stopped");
            }
            if self.chance(0.3) {
                self.line(2, "environment:");
                self.line(4, "HF_HOME: /data/hf");
                let v = self.pick(&["PCI_BUS_ID", "FASTEST_FIRST"]);
                self.line(4, &format!("CUDA_DEVICE_ORDER: {v}"));
            }
        }
        if self.chance(0.1) {
            let value = self.pick(&[
                "${UNSET_X}",
                "${REQUIRED_X:?set it}",
                "$$literal",
                "${TP:-1}",
                "[a?b]",
                "\"\\/\"",
                "${",
                "{a: ${TP-1}, b: [x, y]}",
            ]);
            self.line(0, &format!("x-note: {value}"));
        }
        self.line(0, "services:");
        let services = self.rng.random_range(1..=3);
        for i in 0..services {
            self.service(i, anchored);
        }
        if self.chance(0.03) {
            self.line(0, "---");
            self.line(0, "services: {}");
        }
        std::mem::take(&mut self.out)
    }

    fn image(&mut self) -> String {
        if self.chance(0.12) {
            // Escapes, comments, anchors, tags and interpolation forms, some
            // of which Compose refuses (no image, `\/`).
            return self
                .pick(&[
                    "\"vllm\\/vllm-openai\"",
                    "\"vllm\\u002Fvllm-openai\"",
                    "\"vllm/vllm-openai\\tx\"",
                    "'it''s/image'",
                    "vllm/vllm-openai # a comment",
                    "&img vllm/vllm-openai",
                    "!!str vllm/vllm-openai",
                    "$IMAGE",
                    "${IMAGE:?an image is needed}",
                ])
                .to_owned();
        }
        self.pick(&[
            "vllm/vllm-openai:v0.6.3",
            "\"vllm/vllm-openai:${TAG:-latest}\"",
            "lmsysorg/sglang:latest",
            "ghcr.io/huggingface/text-generation-inference:2.4.0",
            "nvcr.io/nvidia/tensorrt-llm/release:0.17.0",
            "${IMAGE:-vllm/vllm-openai}:${TAG-latest}",
            "'nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3'",
        ])
        .to_owned()
    }

    fn service(&mut self, index: usize, anchored: bool) {
        let name = ["llm", "vllm-server", "sidecar"][index];
        self.line(2, &format!("{name}:"));
        let i = 4;
        if anchored && self.chance(0.7) {
            self.line(i, "<<: *common");
        } else {
            let image = self.image();
            self.line(i, &format!("image: {image}"));
        }
        if self.chance(0.01) {
            // Duplicate keys: go-yaml refuses, so must we.
            self.line(i, "image: busybox");
        }
        let server = self.rng.random_range(0..6);
        let words = self.command_words(server);
        if !words.is_empty() {
            if self.chance(0.15) {
                self.entrypoint(i);
            }
            self.command(i, &words);
        }
        let gpu_source = self.rng.random_range(0..10);
        let has_deploy = gpu_source <= 4;
        match gpu_source {
            0..=4 => self.deploy_devices(i),
            5 => self.service_gpus(i),
            6 => self.line(i, "runtime: nvidia"),
            7 => self.cdi_devices(i),
            _ => {}
        }
        if self.chance(0.7) {
            self.environment(i);
        }
        if self.chance(0.5) {
            self.labels(i);
        }
        if self.chance(0.15) {
            self.line(i, "network_mode: host");
        } else if self.chance(0.85) {
            self.ports(i);
        }
        if !has_deploy && self.chance(0.03) {
            self.line(i, "deploy:");
            self.line(i + 2, "replicas: 1");
        }
    }

    // -- command ------------------------------------------------------------

    fn tp_value(&mut self) -> String {
        if self.chance(0.03) {
            return self.pick(&["${TP?TP is needed}", "${TP:?}"]).to_owned();
        }
        self.pick(&[
            "1",
            "2",
            "4",
            "8",
            "${TP}",
            "${TP:-2}",
            "$TP",
            "\"4\"",
            "${TP:-${COUNT:-2}}",
            "${TP-4}",
            "${TP:+8}",
            "${TP+2}",
            "${EMPTY:-${TP}}",
            "${TP}${EMPTY}",
            "$${TP}",
        ])
        .to_owned()
    }

    fn model_value(&mut self) -> String {
        self.pick(&[
            "meta-llama/Llama-3.1-70B-Instruct",
            "Qwen/Qwen2.5-7B-Instruct",
            "/models/mistral-7b",
            "${MODEL}",
            "${MODEL:-mistralai/Mistral-7B-v0.3}",
        ])
        .to_owned()
    }

    /// The words of a server's command line, unquoted; `command` renders them.
    fn command_words(&mut self, server: u32) -> Vec<String> {
        let mut words: Vec<String> = Vec::new();
        let model = self.model_value();
        let tp = self.tp_value();
        match server {
            0 => {
                if self.chance(0.5) {
                    words.extend(["vllm".into(), "serve".into(), model]);
                } else {
                    words.extend(["--model".into(), model]);
                }
                if self.chance(0.8) {
                    let flag =
                        self.pick(&["--tensor-parallel-size", "-tp", "--tensor_parallel_size"]);
                    if self.chance(0.3) {
                        words.push(format!("{flag}={tp}"));
                    } else {
                        words.extend([flag.to_owned(), tp]);
                    }
                }
                if self.chance(0.2) {
                    words.extend(["--pipeline-parallel-size".into(), "2".into()]);
                }
                if self.chance(0.3) {
                    words.extend([
                        "--served-model-name".into(),
                        self.pick(&["llama", "my-model", "${NAME}"]).into(),
                    ]);
                }
                if self.chance(0.4) {
                    words.extend([
                        "--gpu-memory-utilization".into(),
                        self.pick(&["0.85", "0.9", "0.95"]).into(),
                    ]);
                }
            }
            1 => {
                words.extend([
                    "python3".into(),
                    "-m".into(),
                    "sglang.launch_server".into(),
                    "--model-path".into(),
                    model,
                ]);
                words.extend([self.pick(&["--tp", "--tp-size"]).into(), tp]);
                if self.chance(0.3) {
                    words.extend(["--dp".into(), "2".into()]);
                }
                if self.chance(0.5) {
                    words.extend(["--mem-fraction-static".into(), "0.8".into()]);
                }
            }
            2 => {
                words.extend(["--model-id".into(), model]);
                if self.chance(0.7) {
                    words.extend(["--num-shard".into(), tp]);
                }
            }
            3 => {
                words.extend(["trtllm-serve".into()]);
                if self.chance(0.5) {
                    words.push("serve".into());
                }
                words.push(model);
                words.extend(["--tp_size".into(), tp]);
                if self.chance(0.3) {
                    words.extend(["--pp_size".into(), "1".into()]);
                }
            }
            4 => {
                // A shell wrapper.
                let script = format!("exec vllm serve {model} --tensor-parallel-size {tp} \"$$@\"");
                words.extend(["bash".into(), "-c".into(), script, "--".into()]);
                return words;
            }
            _ => return words,
        }
        if self.chance(0.6) {
            let port = self.pick(&["8000", "30000", "80", "${PORT}", "${PORT:-8000}"]);
            words.extend(["--port".into(), port.into()]);
        }
        if self.chance(0.2) {
            words.extend(["--host".into(), "0.0.0.0".into()]);
        }
        words
    }

    fn entrypoint(&mut self, i: usize) {
        match self.rng.random_range(0..3) {
            0 => self.line(i, "entrypoint: [\"/bin/sh\", \"-c\"]"),
            1 => self.line(
                i,
                "entrypoint: python3 -m vllm.entrypoints.openai.api_server",
            ),
            _ => self.line(i, "entrypoint: []"),
        }
    }

    fn command(&mut self, i: usize, words: &[String]) {
        // Words that a string form must quote.
        let quote = |w: &str| -> String {
            if w.contains(' ') || w.contains('"') || w.is_empty() {
                format!("'{w}'")
            } else {
                w.to_owned()
            }
        };
        let flow_item =
            |w: &str| -> String { format!("\"{}\"", w.replace('\\', "\\\\").replace('"', "\\\"")) };
        let joined: Vec<String> = words.iter().map(|w| quote(w)).collect();
        let mut line = joined.join(" ");
        if self.chance(0.15) {
            line.push_str(self.pick(&[
                " > /tmp/server.log 2>&1",
                " ; echo done",
                " && echo ok",
                " | tee log",
                " &",
            ]));
        }
        if self.chance(0.1) {
            line.push_str(self.pick(&[
                " --extra \"a\\\\b\"",
                " --note \"x\\$y\"",
                " --lora a\\ b",
                " --arg \"q\\\"\"",
            ]));
        }
        match self.rng.random_range(0..9) {
            0 => {
                let items: Vec<String> = words.iter().map(|w| flow_item(w)).collect();
                self.line(i, &format!("command: [{}]", items.join(", ")));
            }
            1 => {
                // The closing bracket at the key's indentation, as real files have it.
                self.line(i, "command: [");
                let items: Vec<String> = words.iter().map(|w| flow_item(w)).collect();
                for (n, item) in items.iter().enumerate() {
                    let comma = if n + 1 < items.len() { "," } else { "" };
                    self.line(i + 2, &format!("{item}{comma}"));
                }
                self.line(i, "]");
            }
            2 => {
                self.line(i, "command:");
                for w in words {
                    let item = if self.chance(0.5) {
                        flow_item(w)
                    } else {
                        quote(w)
                    };
                    let numeric = w.parse::<f64>().is_ok() && !self.chance(0.02);
                    let item = if numeric
                        || item.starts_with('-')
                        || item.contains(": ")
                        || item.contains(" #")
                        || item.starts_with('$')
                    {
                        flow_item(w)
                    } else {
                        item
                    };
                    self.line(i + 2, &format!("- {item}"));
                }
            }
            3 => {
                self.line(i, "command: >");
                for chunk in joined.chunks(2) {
                    self.line(i + 2, &chunk.join(" "));
                }
            }
            4 => {
                let v = self.pick(&["|", "|-", ">-"]);
                self.line(i, &format!("command: {v}"));
                let last = joined.len().saturating_sub(1);
                for (n, chunk) in joined.chunks(2).enumerate() {
                    let cont = if (n + 1) * 2 <= last { " \\" } else { "" };
                    self.line(i + 2, &format!("{}{cont}", chunk.join(" ")));
                }
            }
            5 => {
                let escaped = line.replace('\\', "\\\\").replace('"', "\\\"");
                self.line(i, &format!("command: \"{escaped}\""));
            }
            6 => {
                let escaped = line.replace('\'', "''");
                self.line(i, &format!("command: '{escaped}'"));
            }
            _ => {
                if line.contains(": ")
                    || line.contains(" #")
                    || line.starts_with([
                        '"', '\'', '-', '[', '{', '&', '*', '!', '|', '>', '%', '@', '`',
                    ])
                {
                    let escaped = line.replace('\'', "''");
                    self.line(i, &format!("command: '{escaped}'"));
                } else {
                    self.line(i, &format!("command: {line}"));
                }
            }
        }
    }

    // -- GPUs ---------------------------------------------------------------

    fn gpu_id(&mut self) -> String {
        self.pick(&[
            "'0'",
            "\"1\"",
            "'2'",
            "'3'",
            "'03'",
            "\"GPU-8a1b2c\"",
            "'${GPU_A}'",
            "\"all\"",
            "\"ALL\"",
            "\"${GPU_A:-5}\"",
            "!!str 6",
            "'0,1'",
            "'7'",
            "'4'",
            "\"5\"",
            "'6'",
        ])
        .to_owned()
    }

    fn device_request(&mut self, i: usize, first_prefix: &str) {
        let mut fields: Vec<String> = Vec::new();
        if self.chance(0.01) {
            // Types Compose refuses: an integer id, a nested capability list.
            fields.push(
                self.pick(&["device_ids: [0]", "capabilities: [[gpu]]"])
                    .to_owned(),
            );
        }
        if self.chance(0.8) {
            fields.push(format!(
                "driver: {}",
                self.pick(&["nvidia", "nvidia", "cdi", "amd"])
            ));
        }
        let selector = self.rng.random_range(0..6);
        match selector {
            0..=2 => {
                let n = self.rng.random_range(1..=4);
                let mut ids: Vec<String> = Vec::new();
                while ids.len() < n {
                    let id = self.gpu_id();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                }
                if self.chance(0.02) {
                    ids.push(ids[0].clone());
                }
                if self.chance(0.5) {
                    fields.push(format!("device_ids: [{}]", ids.join(", ")));
                } else {
                    fields.push(format!("device_ids: [{}]", ids.join(",")));
                }
            }
            3 => {
                let count =
                    self.pick(&["1", "2", "all", "-1", "'${COUNT}'", "${COUNT:-1}", "\"2\""]);
                fields.push(format!("count: {count}"));
            }
            4 if self.chance(0.1) => {
                fields.push("count: 1".into());
                fields.push("device_ids: ['0']".into());
            }
            _ => {}
        }
        if self.chance(0.97) {
            fields.push(format!(
                "capabilities: {}",
                self.pick(&["[gpu]", "[\"gpu\"]", "[gpu, utility]", "[compute]", "[gpu]"])
            ));
        }
        if fields.is_empty() {
            fields.push("capabilities: [gpu]".into());
        }
        for (n, field) in fields.iter().enumerate() {
            if n == 0 {
                self.line(i, &format!("{first_prefix}{field}"));
            } else {
                self.line(i + 2, field);
            }
        }
    }

    fn deploy_devices(&mut self, i: usize) {
        self.line(i, "deploy:");
        self.line(i + 2, "resources:");
        self.line(i + 4, "reservations:");
        self.line(i + 6, "devices:");
        let requests = if self.chance(0.1) { 2 } else { 1 };
        for _ in 0..requests {
            self.device_request(i + 8, "- ");
        }
    }

    fn service_gpus(&mut self, i: usize) {
        if self.chance(0.4) {
            let v = self.pick(&["all", "\"all\""]);
            self.line(i, &format!("gpus: {v}"));
        } else {
            self.line(i, "gpus:");
            self.device_request(i + 2, "- ");
        }
    }

    fn cdi_devices(&mut self, i: usize) {
        self.line(i, "devices:");
        let n = self.rng.random_range(1..=2);
        for _ in 0..n {
            let id = self.pick(&["0", "1", "all", "GPU-8a1b2c"]);
            self.line(i + 2, &format!("- nvidia.com/gpu={id}"));
        }
    }

    // -- environment and labels --------------------------------------------

    fn environment(&mut self, i: usize) {
        let mut entries: Vec<(String, Option<String>)> = Vec::new();
        if self.chance(0.4) {
            entries.push((
                "NVIDIA_VISIBLE_DEVICES".into(),
                self.maybe_value(&[
                    "0,1",
                    "2",
                    "all",
                    "${GPUS}",
                    "${GPUS:-3}",
                    "none",
                    "",
                    "GPU-8a1b2c",
                ]),
            ));
        }
        if self.chance(0.3) {
            entries.push((
                "CUDA_VISIBLE_DEVICES".into(),
                self.maybe_value(&["0", "0,1", "1,0", "${GPUS}", "5", "'2'"]),
            ));
        }
        if self.chance(0.2) {
            entries.push(("CUDA_DEVICE_ORDER".into(), Some("PCI_BUS_ID".into())));
        }
        if self.chance(0.2) {
            entries.push(("NUM_SHARD".into(), self.maybe_value(&["2", "${TP}", "4"])));
        }
        if self.chance(0.2) {
            entries.push(("MODEL".into(), self.maybe_value(&["${MODEL}", "org/model"])));
        }
        if self.chance(0.5) {
            entries.push((
                "HF_HUB_ENABLE_HF_TRANSFER".into(),
                Some(
                    self.pick(&[
                        "1",
                        "true",
                        "yes",
                        "on",
                        "1.50",
                        "2.0",
                        "0x10",
                        "1e3",
                        "~",
                        "null",
                        "0o17",
                        "1_000",
                        ".inf",
                        "'1'",
                        "\"007\"",
                        "1e+21",
                        "0.0000001",
                    ])
                    .into(),
                ),
            ));
        }
        if self.chance(0.2) {
            entries.push(("PORT".into(), self.maybe_value(&["8080", "${PORT}"])));
        }
        if self.chance(0.1) {
            entries.push(("EMPTY_VALUE".into(), Some("${EMPTY}".into())));
        }
        if entries.is_empty() {
            entries.push(("VLLM_LOGGING_LEVEL".into(), Some("INFO".into())));
        }
        let list = self.chance(0.4);
        self.line(i, "environment:");
        for (key, value) in entries {
            if list {
                let item = match &value {
                    None => key.clone(),
                    Some(v) => {
                        let v = v.trim_matches('\'');
                        format!("{key}={v}")
                    }
                };
                let rendered = match self.rng.random_range(0..3) {
                    0 => format!("\"{item}\""),
                    1 if !item.contains(": ") && !item.contains(" #") => item,
                    _ => format!("'{item}'"),
                };
                self.line(i + 2, &format!("- {rendered}"));
            } else {
                match value {
                    None => self.line(i + 2, &format!("{key}:")),
                    Some(v) => {
                        let v = if v.is_empty() {
                            "\"\"".to_owned()
                        } else if v.starts_with('$') && self.chance(0.5) {
                            format!("\"{v}\"")
                        } else {
                            v
                        };
                        self.line(i + 2, &format!("{key}: {v}"));
                    }
                }
            }
        }
        if self.chance(0.01) {
            self.line(i + 2, if list { "- 12" } else { "NESTED: {a: 1}" });
        }
    }

    /// A value, or `None` for a bare key (Compose then reads it from `.env`).
    fn maybe_value(&mut self, values: &[&str]) -> Option<String> {
        if self.chance(0.15) {
            None
        } else {
            Some(self.pick(values).to_owned())
        }
    }

    fn labels(&mut self, i: usize) {
        let mut entries: Vec<(String, Option<String>)> = Vec::new();
        if self.chance(0.6) {
            entries.push((
                "catapult.model".into(),
                self.maybe_value(&["llama-70b", "${MODEL}", "\"Qwen/Qwen2.5\""]),
            ));
        }
        if self.chance(0.5) {
            entries.push((
                "catapult.tensor_parallel".into(),
                self.maybe_value(&["2", "\"4\"", "2.0", "${TP}", "8", "1e0", "0x2", "two"]),
            ));
        }
        if self.chance(0.2) {
            entries.push((
                "catapult.gpu_sharing".into(),
                self.maybe_value(&["true", "\"true\"", "True", "yes"]),
            ));
        }
        if self.chance(0.3) {
            entries.push((
                "catapult.params_b".into(),
                self.maybe_value(&["70", "7.5", "1e2", "\"8\""]),
            ));
        }
        if self.chance(0.2) {
            entries.push(("com.example.team".into(), Some("inference".into())));
        }
        if entries.is_empty() {
            return;
        }
        let list = self.chance(0.3);
        self.line(i, "labels:");
        for (key, value) in entries {
            if list {
                let item = match value {
                    None => key,
                    Some(v) => format!("{key}={}", v.trim_matches('"')),
                };
                self.line(i + 2, &format!("- \"{item}\""));
            } else {
                match value {
                    None => self.line(i + 2, &format!("{key}:")),
                    Some(v) => self.line(i + 2, &format!("{key}: {v}")),
                }
            }
        }
    }

    // -- ports --------------------------------------------------------------

    fn ports(&mut self, i: usize) {
        if self.chance(0.05) {
            let v = self.pick(&["!reset []", "!override [\"8000:8000\"]"]);
            self.line(i, &format!("ports: {v}"));
            return;
        }
        self.line(i, "ports:");
        let n = self.rng.random_range(1..=2);
        for _ in 0..n {
            if self.chance(0.15) {
                self.line(i + 2, "- target: 8000");
                let published = self.pick(&["8000", "\"8001\"", "8002-8003", "${PORT}"]);
                self.line(i + 4, &format!("published: {published}"));
                if self.chance(0.4) {
                    self.line(i + 4, "host_ip: 127.0.0.1");
                }
                if self.chance(0.3) {
                    self.line(i + 4, "protocol: tcp");
                }
                continue;
            }
            let port = self.pick(&[
                "\"8000:8000\"",
                "8000:8000",
                "\"127.0.0.1:8001:8000\"",
                "\"[::1]:8002:8000\"",
                "\"::1:8003:8000\"",
                "\"8004-8005:9004-9005\"",
                "\"8006:8000/udp\"",
                "9000",
                "\"${PORT}:8000\"",
                "\"${PORT:-8080}:8000\"",
                "\"0.0.0.0:8007:8000\"",
                "'8008:8000'",
                "\"127.0.0.1::8000\"",
                "\"80\"",
            ]);
            self.line(i + 2, &format!("- {port}"));
        }
    }
}

//! `release-config-validate inventory import`: `machine.yaml` written from
//! nvidia-smi's outputs on the machine (topology's `inventory::import`),
//! checked by reading it back as the validator will.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use topology::inventory::{self, SmiOutput, SmiOutputs};
use topology::yaml::Limits;

use crate::ValidateError;

/// `inventory import`: each file is the text one nvidia-smi command printed.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct ImportArgs {
    /// The output of `nvidia-smi topo -m` (links, NUMA affinity).
    #[arg(long, value_name = "FILE")]
    pub topo: Option<PathBuf>,
    /// The output of `nvidia-smi --query-gpu=index,uuid,name,memory.total,pci.bus_id
    /// --format=csv` (UUIDs, models, memory).
    #[arg(long, value_name = "FILE")]
    pub query: Option<PathBuf>,
    /// The output of `nvidia-smi -L` (UUIDs, MIG slices).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
    /// A label of the machine, `key=value` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
}

/// Writes the machine's `machine.yaml` to `out`.
pub fn run(args: &ImportArgs, out: &mut dyn Write) -> Result<(), ValidateError> {
    let read = |path: &Option<PathBuf>| -> Result<Option<(String, String)>, ValidateError> {
        path.as_deref()
            .map(|path| {
                std::fs::read_to_string(path)
                    .map(|text| (path.display().to_string(), text))
                    .map_err(|e| ValidateError::Unreadable {
                        path: path.to_owned(),
                        reason: e.to_string(),
                    })
            })
            .transpose()
    };
    let (topo, query, list) = (read(&args.topo)?, read(&args.query)?, read(&args.list)?);
    fn output(file: &Option<(String, String)>) -> Option<SmiOutput<'_>> {
        file.as_ref().map(|(name, text)| SmiOutput { name, text })
    }
    let outputs = SmiOutputs {
        topo: output(&topo),
        query: output(&query),
        list: output(&list),
    };
    let mut labels = BTreeMap::new();
    for label in &args.labels {
        let Some((key, value)) = label.split_once('=').filter(|(k, _)| !k.trim().is_empty()) else {
            return Err(ValidateError::Import {
                message: format!("--label `{label}` is not KEY=VALUE"),
            });
        };
        labels.insert(key.trim().to_owned(), value.trim().to_owned());
    }
    let inventory = inventory::import(&outputs, &labels).map_err(|e| ValidateError::Import {
        message: e.to_string(),
    })?;
    let sources: Vec<String> = [
        ("topo -m", &args.topo),
        ("--query-gpu", &args.query),
        ("-L", &args.list),
    ]
    .into_iter()
    .filter_map(|(what, path)| Some(format!("{what} ({})", file_name(path.as_deref()?))))
    .collect();
    let text = inventory::to_machine_yaml(
        &inventory,
        &format!(
            "written by `release-config-validate inventory import` from nvidia-smi {}",
            sources.join(", ")
        ),
    );
    // What is written must read back as it was meant, with nothing to say.
    let (read_back, findings) =
        inventory::read_inventory("imported", "machine.yaml", &text, &Limits::default());
    if let Some(finding) = findings.first() {
        return Err(ValidateError::Import {
            message: format!(
                "the machine.yaml written from these outputs does not pass: {}",
                finding.message
            ),
        });
    }
    if read_back.as_ref().map(|i| (&i.devices, &i.links, i.gpus))
        != Some((&inventory.devices, &inventory.links, inventory.gpus))
    {
        return Err(ValidateError::Import {
            message: "the machine.yaml written from these outputs reads back differently"
                .to_owned(),
        });
    }
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(|source| ValidateError::Output { source })
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

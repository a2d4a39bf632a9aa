//! Reads `model.safetensors` (preferred) or `pytorch_model.bin` into memory.
//!
//! Files are read into a buffer instead of memory-mapped so the crate stays
//! free of `unsafe` (a BERT-base checkpoint is ~440 MB, read once per process).
//! Old checkpoints name LayerNorm parameters `gamma`/`beta`; they are renamed
//! to `weight`/`bias` as transformers does when it loads them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;

/// Weight files in order of preference.
pub const WEIGHT_FILES: [&str; 2] = ["model.safetensors", "pytorch_model.bin"];

/// The weight file a model directory holds (safetensors first).
pub fn weight_file(dir: &Path) -> Result<PathBuf> {
    WEIGHT_FILES
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "{} has neither model.safetensors nor pytorch_model.bin",
                dir.display()
            )
        })
}

/// Loads every tensor of the model in `dir` as f32 on the CPU.
pub fn load(dir: &Path) -> Result<VarBuilder<'static>> {
    let path = weight_file(dir)?;
    let tensors: Vec<(String, Tensor)> = if path.extension().is_some_and(|e| e == "safetensors") {
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .with_context(|| format!("parsing {}", path.display()))?
            .into_iter()
            .collect()
    } else {
        // PyTorch zip pickle (torch >= 1.6). The legacy non-zip format is not readable.
        candle_core::pickle::read_all(&path).with_context(|| {
            format!(
                "parsing {} (only the zip format of torch >= 1.6 is supported)",
                path.display()
            )
        })?
    };
    if tensors.is_empty() {
        bail!("{} holds no tensors", path.display());
    }
    let mut map = HashMap::with_capacity(tensors.len());
    for (name, t) in tensors {
        let t = t.to_dtype(DType::F32)?;
        map.insert(rename(&name), t);
    }
    Ok(VarBuilder::from_tensors(map, DType::F32, &Device::Cpu))
}

fn rename(name: &str) -> String {
    if let Some(base) = name.strip_suffix(".gamma") {
        format!("{base}.weight")
    } else if let Some(base) = name.strip_suffix(".beta") {
        format!("{base}.bias")
    } else {
        name.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn legacy_layer_norm_names_are_renamed() {
        assert_eq!(
            super::rename("bert.embeddings.LayerNorm.gamma"),
            "bert.embeddings.LayerNorm.weight"
        );
        assert_eq!(super::rename("x.LayerNorm.beta"), "x.LayerNorm.bias");
        assert_eq!(super::rename("classifier.weight"), "classifier.weight");
    }
}

//! The parameter store: every trainable variable, by name, in creation order.
//!
//! Models create their variables through candle-nn's `VarBuilder`, as every
//! candle model does; [`ParamStore::vb`] hands out one whose backend is this
//! store. It plays the part of `candle_nn::VarMap`, with two differences: the
//! initial values come from our own seeded generator (candle's CPU generator
//! cannot be seeded), drawn in creation order, so the same seed always gives the
//! same model on any machine and thread count; and the variables keep that order,
//! so the optimiser visits them (and sums their gradient norms) in a fixed order.
//! A checkpoint written by [`ParamStore::save`] loads the candle way, with
//! `VarBuilder::from_mmaped_safetensors`. Layers pass an explicit initialisation
//! (`get_with_hints`): a plain `VarBuilder::get` means candle's default hint,
//! `Init::Const(0.0)`, and would create zeros.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{DType, Device, Result, Shape, Tensor, Var};
use candle_nn::{Init, VarBuilder, var_builder::SimpleBackend};

use crate::error::{Error, Result as LibResult};
use crate::rng::{self, Rng};

struct Inner {
    vars: Vec<(String, Var)>,
    rng: Rng,
}

/// All trainable variables of a model, in the order they were created. Cloning
/// gives another handle to the same store.
#[derive(Clone)]
pub struct ParamStore {
    inner: Arc<Mutex<Inner>>,
}

impl ParamStore {
    /// An empty store whose initial values come from `seed`.
    pub fn new(seed: u64) -> Self {
        let inner = Inner { vars: Vec::new(), rng: rng::stream(seed, "init") };
        ParamStore { inner: Arc::new(Mutex::new(inner)) }
    }

    /// A `VarBuilder` that creates its variables in this store.
    pub fn vb(&self) -> VarBuilder<'static> {
        VarBuilder::from_backend(Box::new(self.clone()), DType::F32, crate::DEVICE)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the store half-updated (a
        // variable is pushed whole), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Names and variables, in creation order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.lock().vars.clone()
    }

    /// The exact number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.lock().vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The current values, by name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.lock()
            .vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_detached_tensor()))
            .collect()
    }

    /// Save every variable as safetensors, atomically.
    pub fn save(&self, path: &Path) -> LibResult<()> {
        let tensors = self.tensors();
        let bytes = safetensors::serialize(
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            None,
        )
        .map_err(|e| {
            candle_core::Error::wrap(e).context("serialising the checkpoint")
        })?;
        crate::io::write_atomic(path, &bytes)
    }

    /// Load a checkpoint into this store's variables, to train on from there (as
    /// `candle_nn::VarMap::load` does; for inference alone, build the model from
    /// `VarBuilder::from_mmaped_safetensors`). Stricter than `VarMap::load`: every
    /// variable must be present with the same shape, and extra names are errors,
    /// never silently ignored.
    pub fn load(&self, path: &Path) -> LibResult<()> {
        let mismatch =
            |reason: String| Error::Checkpoint { path: path.into(), reason };
        let bytes = std::fs::read(path).map_err(Error::io("reading", path))?;
        let loaded = candle_core::safetensors::load_buffer(&bytes, &crate::DEVICE)
            .map_err(|e| mismatch(format!("not a safetensors file ({e})")))?;
        let inner = self.lock();
        for (name, var) in &inner.vars {
            let Some(t) = loaded.get(name) else {
                return Err(mismatch(format!("missing {name}")));
            };
            if t.dims() != var.dims() {
                return Err(mismatch(format!(
                    "{name} has shape {:?}, model expects {:?}",
                    t.dims(),
                    var.dims()
                )));
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        if loaded.len() != inner.vars.len() {
            let extra: Vec<_> = loaded
                .keys()
                .filter(|k| !inner.vars.iter().any(|(n, _)| n == *k))
                .collect();
            return Err(mismatch(format!("unexpected tensors {extra:?}")));
        }
        Ok(())
    }
}

impl SimpleBackend for ParamStore {
    /// Create the variable `name`: drawn from N(0, stdev²) for `Init::Randn`, or
    /// filled with a constant for `Init::Const`. Creating a name twice is an error
    /// (a model that shares a weight clones the layer instead).
    fn get(
        &self,
        shape: Shape,
        name: &str,
        init: Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        if dtype != DType::F32 || !dev.is_cpu() {
            candle_core::bail!("parameter {name}: the store holds f32 on the CPU");
        }
        let mut inner = self.lock();
        if inner.vars.iter().any(|(n, _)| n == name) {
            candle_core::bail!("parameter {name} defined twice");
        }
        let n = shape.elem_count();
        let data = match init {
            Init::Randn { mean: 0.0, stdev } => {
                rng::normal_vec(&mut inner.rng, n, stdev)
            }
            Init::Const(value) => vec![value as f32; n],
            other => candle_core::bail!(
                "parameter {name}: initialisation {other:?} is not supported"
            ),
        };
        let var = Var::from_vec(data, shape, &crate::DEVICE)?;
        let t = var.as_tensor().clone();
        inner.vars.push((name.to_string(), var));
        Ok(t)
    }

    fn get_unchecked(
        &self,
        name: &str,
        dtype: DType,
        _: &Device,
    ) -> Result<Tensor> {
        if dtype != DType::F32 {
            candle_core::bail!("parameter {name}: the store holds f32");
        }
        match self.lock().vars.iter().find(|(n, _)| n == name) {
            Some((_, v)) => Ok(v.as_tensor().clone()),
            None => candle_core::bail!("no parameter {name}"),
        }
    }

    fn contains_tensor(&self, name: &str) -> bool {
        self.lock().vars.iter().any(|(n, _)| n == name)
    }
}

//! The parameter store: every trainable variable, by name, in creation order.
//!
//! Variables are filled from our own seeded generator (candle's CPU generator
//! cannot be seeded), in a fixed order, so the same seed always gives the same
//! model.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use candle_core::{DType, Result, Shape, Tensor, Var};

use crate::rng::{self, Rng};

/// All trainable variables of a model, in the order they were created.
pub struct ParamStore {
    vars: RefCell<Vec<(String, Var)>>,
    rng: RefCell<Rng>,
}

impl ParamStore {
    /// An empty store whose initial values come from `seed`.
    pub fn new(seed: u64) -> Self {
        crate::kernels::configure_threads();
        ParamStore {
            vars: RefCell::new(Vec::new()),
            rng: RefCell::new(rng::stream(seed, "init")),
        }
    }

    /// A view that prefixes every name with `prefix.`.
    pub fn scope(&self, prefix: &str) -> Scope<'_> {
        Scope { store: self, prefix: prefix.to_string() }
    }

    fn add(&self, name: String, data: Vec<f32>, shape: Shape) -> Result<Tensor> {
        let mut vars = self.vars.borrow_mut();
        if vars.iter().any(|(n, _)| *n == name) {
            candle_core::bail!("parameter {name} defined twice");
        }
        let var = Var::from_vec(data, shape, &crate::DEVICE)?;
        let t = var.as_tensor().clone();
        vars.push((name, var));
        Ok(t)
    }

    /// Names and variables, in creation order.
    pub fn vars(&self) -> Vec<(String, Var)> {
        self.vars.borrow().clone()
    }

    /// The exact number of scalar parameters.
    pub fn num_params(&self) -> usize {
        self.vars.borrow().iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The current values, by name.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        self.vars
            .borrow()
            .iter()
            .map(|(n, v)| (n.clone(), v.as_detached_tensor()))
            .collect()
    }

    /// Save every variable as safetensors, atomically.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tensors = self.tensors();
        let bytes = safetensors::serialize(
            tensors.iter().map(|(n, t)| (n.as_str(), t)),
            None,
        )
        .context("serialising the checkpoint")?;
        crate::io::write_atomic(path, &bytes)
    }

    /// Load a checkpoint into this store. Every variable must be present with the
    /// same shape; extra or missing names are errors, never silently ignored.
    pub fn load(&self, path: &Path) -> anyhow::Result<()> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("reading {}", path.display()))?;
        let loaded = candle_core::safetensors::load_buffer(&bytes, &crate::DEVICE)
            .with_context(|| {
                format!("{} is not a safetensors file", path.display())
            })?;
        let vars = self.vars.borrow();
        for (name, var) in vars.iter() {
            let Some(t) = loaded.get(name) else {
                bail!("{}: missing {name}", path.display())
            };
            if t.dims() != var.dims() {
                bail!(
                    "{}: {name} has shape {:?}, model expects {:?}",
                    path.display(),
                    t.dims(),
                    var.dims()
                );
            }
            var.set(&t.to_dtype(DType::F32)?)?;
        }
        if loaded.len() != vars.len() {
            let extra: Vec<_> = loaded
                .keys()
                .filter(|k| !vars.iter().any(|(n, _)| n == *k))
                .collect();
            bail!("{}: unexpected tensors {extra:?}", path.display());
        }
        Ok(())
    }
}

/// A named view into a [`ParamStore`], used while building a model.
#[derive(Clone)]
pub struct Scope<'a> {
    store: &'a ParamStore,
    prefix: String,
}

impl<'a> Scope<'a> {
    pub fn scope(&self, name: impl std::fmt::Display) -> Scope<'a> {
        Scope { store: self.store, prefix: format!("{}.{name}", self.prefix) }
    }

    fn name(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// A variable drawn from N(0, std²).
    pub fn normal(
        &self,
        name: &str,
        shape: impl Into<Shape>,
        std: f64,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let data = rng::normal_vec(
            &mut self.store.rng.borrow_mut(),
            shape.elem_count(),
            std,
        );
        self.store.add(self.name(name), data, shape)
    }

    /// A variable filled with `value`.
    pub fn constant(
        &self,
        name: &str,
        shape: impl Into<Shape>,
        value: f32,
    ) -> Result<Tensor> {
        let shape = shape.into();
        self.store.add(self.name(name), vec![value; shape.elem_count()], shape)
    }
}

// Chapter 6, exercise 1: a KV cache for one attention head, and a decoding step
// that uses it.
//
// A causal decoder computes each position's key and value once and keeps them: when
// the next token arrives, only its own query, key and value are new. Here the cache
// is two flat vectors of floats, one position after the other; `step` is already
// written from the two methods you implement.

/// The keys and values of every position seen so far, for one attention head.
/// Position `j`'s key is `keys[j * head_dim..(j + 1) * head_dim]`, and likewise for
/// its value.
pub struct HeadCache {
    pub head_dim: usize,
    pub keys: Vec<f32>,
    pub values: Vec<f32>,
}

impl HeadCache {
    pub fn new(head_dim: usize) -> Self {
        HeadCache { head_dim, keys: Vec::new(), values: Vec::new() }
    }

    /// Number of cached positions.
    pub fn len(&self) -> usize {
        self.keys.len() / self.head_dim
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Bytes held: a key and a value of `head_dim` floats per position.
    pub fn bytes(&self) -> usize {
        (self.keys.len() + self.values.len()) * std::mem::size_of::<f32>()
    }

    /// Append one position's key and value (each `head_dim` long) at the end of the
    /// cache.
    pub fn append(&mut self, k: &[f32], v: &[f32]) {
        // TODO: check both lengths against `head_dim` (panic if they differ), then
        // append.
        todo!("append a key of {} and a value of {} floats", k.len(), v.len())
    }

    /// Attention of the query `q` over every cached position: the weights are
    /// softmax over j of q·k_j / √head_dim, and the output is the weighted sum of
    /// the v_j.
    pub fn attend(&self, q: &[f32]) -> Vec<f32> {
        // TODO: one score per cached key, a numerically stable softmax (subtract
        // the largest score first), then the weighted sum of the cached values.
        todo!(
            "attend with a query of {} floats over {} positions",
            q.len(),
            self.len()
        )
    }

    /// One decoding step: cache the newest position's key and value, then let its
    /// query attend over everything cached (itself included). Nothing earlier is
    /// recomputed.
    pub fn step(&mut self, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        self.append(k, v);
        self.attend(q)
    }
}

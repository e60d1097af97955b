// Chapter 6, exercise 1: a KV cache for one attention head, and a decoding step
// that uses it (reference solution).

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
        assert_eq!(k.len(), self.head_dim, "a key has head_dim entries");
        assert_eq!(v.len(), self.head_dim, "a value has head_dim entries");
        self.keys.extend_from_slice(k);
        self.values.extend_from_slice(v);
    }

    /// Attention of the query `q` over every cached position: the weights are
    /// softmax over j of q·k_j / √head_dim, and the output is the weighted sum of
    /// the v_j.
    pub fn attend(&self, q: &[f32]) -> Vec<f32> {
        let d = self.head_dim;
        let scale = 1.0 / (d as f32).sqrt();
        let scores: Vec<f32> = self
            .keys
            .chunks(d)
            .map(|k| k.iter().zip(q).map(|(a, b)| a * b).sum::<f32>() * scale)
            .collect();
        // Subtract the largest score before exponentiating, so nothing overflows.
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let weights: Vec<f32> = scores.iter().map(|s| (s - max).exp()).collect();
        let total: f32 = weights.iter().sum();
        let mut out = vec![0.0; d];
        for (w, v) in weights.iter().zip(self.values.chunks(d)) {
            for (o, x) in out.iter_mut().zip(v) {
                *o += w / total * x;
            }
        }
        out
    }

    /// One decoding step: cache the newest position's key and value, then let its
    /// query attend over everything cached (itself included). Nothing earlier is
    /// recomputed.
    pub fn step(&mut self, q: &[f32], k: &[f32], v: &[f32]) -> Vec<f32> {
        self.append(k, v);
        self.attend(q)
    }
}

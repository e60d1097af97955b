// Chapter 2, exercise 2: T5 span corruption with sentinels (reference solution).

/// T5's encoder input and decoder target. Each maximal run of `true` in `noise` is
/// one span: in the input it becomes one sentinel (span `i` gets id `first_sentinel
/// + i`), and the target lists each sentinel followed by the tokens it replaced.
/// Both end with `eos`.
pub fn corrupt(
    tokens: &[u32],
    noise: &[bool],
    first_sentinel: u32,
    eos: u32,
) -> (Vec<u32>, Vec<u32>) {
    let (mut input, mut target) = (Vec::new(), Vec::new());
    let mut spans = 0;
    for (i, &t) in tokens.iter().enumerate() {
        if !noise[i] {
            input.push(t);
            continue;
        }
        if i == 0 || !noise[i - 1] {
            let s = first_sentinel + spans;
            spans += 1;
            input.push(s);
            target.push(s);
        }
        target.push(t);
    }
    input.push(eos);
    target.push(eos);
    (input, target)
}

/// The inverse: the original tokens, from the input and the target. Ids from
/// `first_sentinel` to `first_sentinel + n_sentinels - 1` are sentinels.
pub fn restore(
    input: &[u32],
    target: &[u32],
    first_sentinel: u32,
    n_sentinels: u32,
    eos: u32,
) -> Vec<u32> {
    let is_sentinel =
        |x: u32| (first_sentinel..first_sentinel + n_sentinels).contains(&x);
    let mut spans: Vec<Vec<u32>> = Vec::new();
    for &x in target.iter().take_while(|&&x| x != eos) {
        if is_sentinel(x) {
            spans.push(Vec::new());
        } else if let Some(span) = spans.last_mut() {
            span.push(x);
        }
    }
    let mut out = Vec::new();
    for &x in input.iter().take_while(|&&x| x != eos) {
        if is_sentinel(x) {
            out.extend(&spans[(x - first_sentinel) as usize]);
        } else {
            out.push(x);
        }
    }
    out
}

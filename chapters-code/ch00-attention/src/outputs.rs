//! Outputs: the example's matrices as tables, the diagrams, and the claims the page
//! makes.

use transformer::chapter::{Claims, Outputs, Table, round_dp};

use crate::example::{Mat, Worked};

/// A matrix as a table with labelled rows (`corner` names what the rows are).
fn matrix(corner: &str, tokens: &[String], cols: &[&str], m: &Mat) -> String {
    let mut header = vec![corner];
    header.extend_from_slice(cols);
    let mut t = Table::new(&header).right_from(1);
    for (tok, row) in tokens.iter().zip(m) {
        let mut cells = vec![format!("**{tok}**")];
        cells.extend(row.iter().map(|x| format!("{:.2}", round_dp(*x, 2))));
        t.row(cells);
    }
    t.markdown()
}

/// Scores after the mask: blocked pairs shown as −∞.
fn masked(tokens: &[String], m: &[Vec<Option<f64>>]) -> String {
    let cols: Vec<String> = tokens.iter().map(|t| format!("key: {t}")).collect();
    let mut header = vec!["query".to_string()];
    header.extend(cols);
    let mut t = Table::new(&header).right_from(1);
    for (tok, row) in tokens.iter().zip(m) {
        let mut cells = vec![format!("**{tok}**")];
        cells.extend(
            row.iter()
                .map(|x| x.map_or("−∞".to_string(), |x| format!("{x:.2}"))),
        );
        t.row(cells);
    }
    t.markdown()
}

/// Every file of the page.
pub fn outputs(w: &Worked) -> anyhow::Result<Outputs> {
    let mut out = Outputs::new(w)?;
    let ex = &w.example;
    let toks = &ex.tokens;
    let keys: Vec<String> = toks.iter().map(|t| format!("key: {t}")).collect();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    out.file(
        "x.md",
        matrix("token", toks, &["feature 1", "feature 2", "feature 3"], &ex.x),
    )?;
    let rows3 = ["feature 1", "feature 2", "feature 3"].map(String::from).to_vec();
    for (name, m) in [("w_q.md", &ex.w_q), ("w_k.md", &ex.w_k), ("w_v.md", &ex.w_v)]
    {
        out.file(name, matrix("", &rows3, &["column 1", "column 2"], m))?;
    }
    out.file("q.md", matrix("token", toks, &["q₁", "q₂"], &w.q))?;
    out.file("k.md", matrix("token", toks, &["k₁", "k₂"], &w.k))?;
    out.file("v.md", matrix("token", toks, &["v₁", "v₂"], &w.v))?;
    out.file("scores.md", matrix("query", toks, &keys, &w.scores))?;
    for (mask, pass) in [("bidirectional", &w.bidirectional), ("causal", &w.causal)]
    {
        out.file(&format!("{mask}_masked.md"), masked(toks, &pass.masked))?;
        out.file(
            &format!("{mask}_weights.md"),
            matrix("query", toks, &keys, &pass.weights),
        )?;
        out.file(
            &format!("{mask}_output.md"),
            matrix("token", toks, &["out₁", "out₂"], &pass.output),
        )?;
    }
    out.file("families.svg", crate::diagrams::families(FAMILY_LAYERS)?)?;
    out.claims(claims(w));
    out.headline(format!(
        "causal weights of \"{}\": {}",
        toks[1],
        w.causal.weights[1]
            .iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    out.open_first("families.svg");
    Ok(out)
}

/// Chapter 1's default model has four layers per stack; the diagrams show the same.
pub const FAMILY_LAYERS: usize = 4;

/// What the page says about the example, computed from it.
pub fn claims(w: &Worked) -> Claims {
    let mut c = Claims::new();
    let rows_sum_to_one = [&w.bidirectional, &w.causal].iter().all(|p| {
        p.weights.iter().all(|r| (r.iter().sum::<f64>() - 1.0).abs() < 1e-12)
    });
    c.add("rows_sum_to_one", rows_sum_to_one, "every row of weights sums to 1");
    let n = w.causal.weights.len();
    let future_zero =
        (0..n).all(|i| (i + 1..n).all(|j| w.causal.weights[i][j] == 0.0));
    c.add(
        "causal_future_is_zero",
        future_zero,
        "every weight above the diagonal is exactly 0",
    );
    let first_copies = w.causal.output[0] == w.v[0];
    c.add(
        "first_token_reads_only_itself",
        first_copies && w.causal.weights[0][0] == 1.0,
        format!(
            "the first token reads only itself, so its output is its own value row ({})",
            fmt_row(&w.v[0])
        ),
    );
    let last_same = w.causal.output[n - 1] == w.bidirectional.output[n - 1];
    c.add(
        "last_row_same_under_both_masks",
        last_same,
        format!(
            "the last token's output is the same under both masks ({})",
            fmt_row(&w.causal.output[n - 1])
        ),
    );
    let changed = (0..n - 1)
        .filter(|&i| w.causal.output[i] != w.bidirectional.output[i])
        .count();
    c.add(
        "earlier_rows_change",
        changed == n - 1,
        format!("the outputs of all {} earlier tokens change", n - 1),
    );
    c
}

fn fmt_row(r: &[f64]) -> String {
    r.iter()
        .map(|x| format!("{:.2}", round_dp(*x, 2)))
        .collect::<Vec<_>>()
        .join(", ")
}

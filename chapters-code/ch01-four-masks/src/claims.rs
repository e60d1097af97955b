//! What the page says about the models' outputs and counts, computed from them.
//! Each claim's wording is generated from the numbers it summarises, and `holds`
//! says whether the data bear it out; the book's build fails on a claim that does
//! not hold.

use transformer::chapter::Claims;

use crate::maps::AttentionMap;
use crate::report::Report;

/// Every claim of the page about the attention maps, the costs and the shared
/// weights.
pub fn claims(r: &Report, maps: &[AttentionMap]) -> Claims {
    let mut c = Claims::new();
    let (n, k) = (r.settings.seq_len, r.settings.prefix_len);
    let m = n - k;
    let pairs = |name: &str| {
        r.allowed_pairs.iter().find(|(f, _)| f == name).map(|(_, x)| *x)
    };
    let causal = n * (n + 1) / 2;

    // The non-zero cells of the maps are exactly the pairs each mask allows.
    c.add(
        "stack_maps_count_the_mask",
        pairs("encoder_only") == Some(n * n)
            && pairs("causal") == Some(causal)
            && pairs("prefix_lm") == Some(causal + k * (k - 1) / 2),
        format!(
            "{} = n² non-zero cells bidirectionally, {causal} = n(n + 1)/2 causally, and {causal} + k(k − 1)/2 = {} \
             with a prefix of k = {k}",
            n * n,
            causal + k * (k - 1) / 2
        ),
    );
    c.add(
        "ed_maps_count_the_masks",
        pairs("ed_encoder") == Some(k * k)
            && pairs("ed_decoder") == Some(m * (m + 1) / 2)
            && pairs("ed_cross") == Some(m * k),
        format!(
            "the encoder's map has {} = {k}² non-zero cells, the decoder's {} = {m}·{}/2 and the cross-attention's \
             {} = {m}·{k}: every output position reads every input position",
            k * k,
            m * (m + 1) / 2,
            m + 1,
            m * k
        ),
    );

    // The untrained attention is close to even over the visible keys.
    let mut worst: f64 = 0.0;
    for map in maps {
        for row in &map.probs {
            let visible: Vec<f64> = row.iter().flatten().copied().collect();
            if !visible.is_empty() {
                let top = visible.iter().copied().fold(0.0, f64::max);
                worst = worst.max(top * visible.len() as f64);
            }
        }
    }
    c.add(
        "untrained_attention_nearly_even",
        worst < 1.5,
        format!(
            "the largest weight in any row of the six maps is {worst:.2} times the even share, one over the number \
             of keys the row may read"
        ),
    );

    // Three of the four families are one model.
    let f = &r.families;
    let same = |a: usize, b: usize| {
        f[a].cost.params == f[b].cost.params && f[a].cost.flops == f[b].cost.flops
    };
    c.add(
        "three_rows_are_one_model",
        same(0, 2) && same(2, 3),
        "same parameters and FLOPs",
    );
    c.add(
        "every_family_matches_its_formulas",
        f.iter().all(|x| x.cost.matches_formulas),
        "every family's counts equal the formulas",
    );

    // Attention scores are a small part of the compute at this length.
    let cfg = &r.settings.config;
    let attention_share = (cfg.n_layers as u64 * cfg.attention_flops(n)) as f64
        / cfg.decoder_only_flops_per_token(n) as f64;
    c.add(
        "attention_scores_small_share",
        attention_share < 0.05,
        format!(
            "which at this length are {:.1}% of the total, so skipping the blocked half would save at most {:.1}%",
            100.0 * attention_share,
            50.0 * attention_share
        ),
    );

    // T5's accounting: twice the parameters of an L decoder, about its compute.
    let t5 = &r.t5;
    let params_ratio =
        t5.params_encoder_decoder as f64 / t5.params_decoder_l as f64;
    let flops_ratio = t5.flops_encoder_decoder as f64 / t5.flops_decoder_l as f64;
    c.add(
        "t5_rule_holds",
        (1.8..=2.3).contains(&params_ratio) && (0.9..=1.2).contains(&flops_ratio),
        format!(
            "*twice the parameters of an $L$ decoder, about its compute* ({params_ratio:.2} times its parameters, \
             {flops_ratio:.3} times its FLOPs)"
        ),
    );
    c.add(
        "cross_share_above_t5",
        t5.cross_attention_percent > 10.0,
        "a larger cross-attention share than T5's",
    );
    // Where the extra compute goes: cross-attention, less the logits the
    // encoder-decoder does not compute for its input tokens and the shorter
    // self-attentions.
    let (l, d, hd, g) = (
        cfg.n_layers as u64,
        cfg.d_model as u64,
        cfg.head_dim() as u64,
        cfg.n_kv_heads as u64,
    );
    let (k64, m64) = (k as u64, m as u64);
    let cross =
        l * (k64 * 2 * d * 2 * g * hd + m64 * (4 * d * d + cfg.attention_flops(k)));
    let head_saved = k64 * cfg.head_flops();
    let attention_saved = l
        * (n as u64 * cfg.attention_flops(n)
            - k64 * cfg.attention_flops(k)
            - m64 * cfg.attention_flops(m));
    let extra = t5.flops_encoder_decoder as i64 - t5.flops_decoder_l as i64;
    let pct = |x: f64| 100.0 * x / t5.flops_decoder_l as f64;
    c.add(
        "t5_extra_compute_is_cross_attention",
        extra == cross as i64 - head_saved as i64 - attention_saved as i64 && extra > 0,
        format!(
            "The extra {:.1}% of compute is the cross-attention ({:.1}% of the $L$ decoder's FLOPs), less the \
             logits the encoder-decoder does not compute for its {k} input tokens ({:.1}%) and its shorter \
             self-attentions ({:.1}%)",
            pct(extra as f64),
            pct(cross as f64),
            pct(head_saved as f64),
            pct(attention_saved as f64)
        ),
    );

    // One set of weights, two masks.
    let sh = &r.sharing;
    let differing: Vec<usize> = sh
        .rows
        .iter()
        .enumerate()
        .filter(|(_, x)| x.mask_row_differs)
        .map(|(i, _)| i)
        .collect();
    c.add(
        "layer1_moves_exactly_the_differing_rows",
        sh.changed_after_layer.first() == Some(&differing),
        "exactly the positions whose mask rows differ moved after layer 1",
    );
    c.add(
        "same_rows_identical_after_layer1",
        sh.rows.iter().filter(|x| !x.mask_row_differs).all(|x| x.diff_per_layer[0] == 0.0),
        "the positions with the same mask row are identical bit for bit after layer 1",
    );
    let all: Vec<usize> = (0..n).collect();
    c.add(
        "every_position_differs_from_layer_2",
        sh.changed_after_layer.iter().skip(1).all(|x| *x == all),
        "every position differs from layer 2 on, and in the logits",
    );
    c.add(
        "reach_equals_mask",
        sh.reach_equals_mask
            && sh.reachable_causal == causal
            && sh.reachable_prefix == causal + k * (k - 1) / 2,
        "the connected pairs are exactly those the mask allows",
    );
    c
}

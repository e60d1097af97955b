// Chapter 4, exercise 2: keeping the held-out tasks out of multitask finetuning
// (reference solution).

use transformer::corpus::{PromptTemplate, TaskInstance};

/// How the held-out families' questions begin ("Which is bigger, the cup or the
/// box?", "Is the cup in the barn?", "What is the step after washing the cup?").
pub const HELD_OUT_STEMS: [&str; 3] = [
    "Which is bigger",        // bigger
    "Is the ",                // yes_no
    "What is the step after", // next_step
];

/// The finetuning prompts of `instances` under `template`, in order, and how many
/// instances were rejected. An instance is rejected if its family is held out
/// (`TaskFamily::is_held_out`) or if its question begins with one of
/// [`HELD_OUT_STEMS`], whatever family it claims.
pub fn finetuning_mixture(
    instances: &[TaskInstance], // of every family, in any order
    template: PromptTemplate,
) -> (Vec<String>, usize) {
    let mut prompts = Vec::new();
    let mut rejected = 0;
    for t in instances {
        // Two independent reasons: the label says held out, or the text asks a
        // held-out question (a mislabelled instance must not slip through).
        let q = &t.question;
        let asks_held_out = HELD_OUT_STEMS.iter().any(|stem| q.starts_with(stem));
        if t.family.is_held_out() || asks_held_out {
            rejected += 1;
        } else {
            prompts.push(t.prompt(template));
        }
    }
    (prompts, rejected)
}

/// The indices, in increasing order, of the prompts (or documents) that contain at
/// least one of `markers`.
pub fn leaks(prompts: &[String], markers: &[&str]) -> Vec<usize> {
    let leaky = |text: &String| markers.iter().any(|m| text.contains(m));
    (0..prompts.len()).filter(|&i| leaky(&prompts[i])).collect()
}

// Chapter 4, exercise 2: keeping the held-out tasks out of multitask finetuning.
//
// Wang et al. (2022) finetune on a mixture of prompted tasks and then evaluate
// zero-shot on tasks the mixture never contained. The chapter does the same with
// the corpus's task families: three of them (bigger, yes_no, next_step) are held
// out, and the experiment is only zero-shot if none of their questions reaches
// finetuning in prompted form. Here you build the mixture's prompts with that
// filter, and the scan that looks for prompted text where there should be none.

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
    // TODO: for each instance, decide whether it is held out (by its family or by
    // how its question begins); count the rejected ones and keep `prompt(template)`
    // of the others.
    todo!("filter {} instances, prompted with {template:?}", instances.len())
}

/// The indices, in increasing order, of the prompts (or documents) that contain at
/// least one of `markers`.
pub fn leaks(prompts: &[String], markers: &[&str]) -> Vec<usize> {
    // TODO: keep the index of every text in which some marker occurs.
    todo!("scan {} texts for {} markers", prompts.len(), markers.len())
}

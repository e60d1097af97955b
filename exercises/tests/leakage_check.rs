// Compiles exercises/starters/leakage_check.rs into this test (the solution with
// --features solutions).
exercises::exercise!(leakage_check);

use transformer::VariantArray;
use transformer::corpus::PromptTemplate::{
    self, QuestionAnswer, Short, WithOptions,
};
use transformer::corpus::{self, PROMPT_MARKERS, TaskFamily, TaskInstance};

/// `n` seeded instances of every family, interleaved so that the held-out ones are
/// scattered through the list: colour, place, ..., next_step, colour, ...
fn every_family(seed: u64, n: usize) -> Vec<TaskInstance> {
    let per_family: Vec<Vec<TaskInstance>> =
        TaskFamily::VARIANTS.iter().map(|&f| corpus::tasks(f, seed, n)).collect();
    (0..n).flat_map(|i| per_family.iter().map(move |ts| ts[i].clone())).collect()
}

/// The held-out questions as a prompt of `template` asks them ("Q: Is the ").
fn asked(template: PromptTemplate) -> Vec<String> {
    let ask = if template == Short { "Q: " } else { "Question: " };
    HELD_OUT_STEMS.iter().map(|stem| format!("{ask}{stem}")).collect()
}

#[test]
fn no_held_out_family_survives() {
    let instances = every_family(3, 12);
    for &template in PromptTemplate::VARIANTS {
        let (prompts, _) = finetuning_mixture(&instances, template);
        let training = instances.iter().filter(|t| !t.family.is_held_out());
        let expected: Vec<String> = training.map(|t| t.prompt(template)).collect();
        assert_eq!(prompts.len(), 5 * 12, "{template:?}: 12 per training family");
        assert_eq!(prompts, expected, "{template:?}: training prompts, in order");
        for (i, p) in prompts.iter().enumerate() {
            for question in asked(template) {
                let leaked = p.contains(&question);
                assert!(!leaked, "prompt {i} asks {question:?}:\n{p}");
            }
        }
    }
}

#[test]
fn the_count_rejected_is_the_number_of_held_out_instances() {
    // A different number of each family (2 colour, 3 place, ..., 9 next_step),
    // family after family: 7 + 8 + 9 = 24 held out, 20 kept.
    let mut instances = Vec::new();
    for (k, &family) in TaskFamily::VARIANTS.iter().enumerate() {
        instances.extend(corpus::tasks(family, 17, 2 + k));
    }
    let held_out = instances.iter().filter(|t| t.family.is_held_out()).count();
    assert_eq!(held_out, 24);
    let (prompts, rejected) = finetuning_mixture(&instances, WithOptions);
    assert_eq!(rejected, held_out, "the number rejected");
    assert_eq!(prompts.len(), instances.len() - held_out, "the number kept");
    // Nothing to reject, then nothing to keep.
    let training = corpus::tasks(TaskFamily::Older, 2, 5);
    let (prompts, rejected) = finetuning_mixture(&training, Short);
    assert_eq!((prompts.len(), rejected), (5, 0), "five older questions");
    let held = corpus::tasks(TaskFamily::NextStep, 2, 5);
    let (prompts, rejected) = finetuning_mixture(&held, Short);
    assert_eq!((prompts.len(), rejected), (0, 5), "five next-step questions");
}

#[test]
fn mislabelled_instances_are_still_rejected() {
    use TaskFamily::*;
    // Held-out questions under training labels: the family alone would let them in.
    let mut sneaky = Vec::new();
    for (family, label) in [(Bigger, Colour), (YesNo, Place), (NextStep, Count)] {
        for mut t in corpus::tasks(family, 9, 4) {
            t.family = label;
            sneaky.push(t);
        }
    }
    let (prompts, rejected) = finetuning_mixture(&sneaky, QuestionAnswer);
    assert_eq!(rejected, 12, "12 held-out questions labelled as training ones");
    assert!(prompts.is_empty(), "kept:\n{}", prompts.join("\n\n"));
    // And the other way round: a training question under a held-out label is
    // rejected by its label.
    let mut odd = corpus::tasks(Owner, 9, 3);
    for t in &mut odd {
        t.family = YesNo;
    }
    let (prompts, rejected) = finetuning_mixture(&odd, QuestionAnswer);
    assert_eq!((prompts.len(), rejected), (0, 3), "owner questions as yes_no");
}

#[test]
fn the_question_decides_not_the_context() {
    // A colour question whose context happens to quote a yes/no question: what is
    // asked is a training question, so the instance stays in the mixture.
    let mut t = corpus::tasks(TaskFamily::Colour, 4, 1).remove(0);
    t.context.push_str(" \"Is the barn open?\" Ada asked.");
    let (prompts, rejected) = finetuning_mixture(std::slice::from_ref(&t), Short);
    assert_eq!(rejected, 0, "{:?} is not a held-out question", t.question);
    assert_eq!(prompts, [t.prompt(Short)]);
}

#[test]
fn leaks_finds_planted_markers_and_nothing_in_clean_text() {
    let texts = vec![
        "Q: where? A: here".to_string(),
        "no marker".to_string(),
        "Answer: yes".to_string(),
        "Quiet A.".to_string(),
        String::new(),
        "Question:".to_string(),
    ];
    assert_eq!(leaks(&texts, &PROMPT_MARKERS), [0, 2, 5], "in {texts:?}");
    assert_eq!(leaks(&texts, &["A:"]), [0], "the marker \"A:\" in {texts:?}");
    assert!(leaks(&texts, &[]).is_empty(), "no markers, no leaks");
    // Real documents, with markers planted in three of them (two in the last one,
    // which counts once).
    let mut docs = corpus::documents(21, 40);
    assert!(leaks(&docs, &PROMPT_MARKERS).is_empty(), "the documents are clean");
    let middle = docs[3].len() / 2;
    docs[3].insert_str(middle, " Question: ");
    docs[17].push_str(" A:");
    docs[39] = format!("Q: {} Answer:", docs[39]);
    assert_eq!(leaks(&docs, &PROMPT_MARKERS), [3, 17, 39], "planted in 3, 17, 39");
}

#[test]
fn pretraining_documents_hold_no_prompt_but_every_finetuning_prompt_does() {
    let docs = corpus::documents(7, 400);
    let found = leaks(&docs, &PROMPT_MARKERS);
    assert!(found.is_empty(), "documents {found:?} contain a prompt marker");
    let instances = every_family(7, 4);
    for &template in PromptTemplate::VARIANTS {
        let (prompts, _) = finetuning_mixture(&instances, template);
        let every: Vec<usize> = (0..prompts.len()).collect();
        let found = leaks(&prompts, &PROMPT_MARKERS);
        assert_eq!(found, every, "{template:?}: every prompt carries a marker");
    }
}

#[test]
fn a_scan_of_an_unfiltered_mixture_finds_exactly_the_held_out_questions() {
    let instances = every_family(5, 6);
    let held_out = |i: &usize| instances[*i].family.is_held_out();
    let held: Vec<usize> = (0..instances.len()).filter(held_out).collect();
    for &template in PromptTemplate::VARIANTS {
        let unfiltered = instances.iter();
        let prompts: Vec<String> = unfiltered.map(|t| t.prompt(template)).collect();
        let questions = asked(template);
        let markers: Vec<&str> = questions.iter().map(String::as_str).collect();
        let found = leaks(&prompts, &markers);
        assert_eq!(found, held, "{template:?}: the held-out questions");
    }
}

//! A synthetic, English-like corpus about a small world, generated from a seed.
//!
//! Nothing is downloaded: every text in the book is written by this module. The
//! world is small on purpose, so that a model of a few hundred thousand parameters
//! can learn its language, and random on purpose, so that it cannot succeed by
//! memorising facts.
//!
//! # The world
//!
//! A [`Scene`] is one freshly drawn situation: a few [`Person`]s with ages, a few
//! [`Thing`]s (each with a kind, a colour, a size, a place and an owner), a few
//! [`Herd`]s of animals (a kind, a count, a place) and one [`Procedure`] (a
//! person's plan: ordered steps such as "wash the cup", "paint the box"). Every
//! document and every task draws a new scene, so the same cup is red in one
//! document and green in the next: the only way to answer a question about a scene
//! is to read the text that describes it.
//!
//! # Pretraining documents
//!
//! [`document`] renders a scene as a short text made of sections, each with many
//! sentence templates chosen at random ([`Section`]): plain descriptions,
//! comparisons ("the lamp is bigger than the cup"), negations ("the key is not in
//! the attic"), inventories, procedures ("First, Ada washes the cup. Then ...") and
//! dialogues in which people ask each other about the scene. [`documents`] and
//! [`DocumentStream`] give reproducible streams of them.
//!
//! # Prompted tasks
//!
//! [`TaskFamily`] lists eight question types (colour, place, owner, count, older,
//! bigger, yes/no about a place, next step of a procedure). [`task`] draws an
//! instance: a context passage (a new scene, described the way pretraining
//! documents describe scenes), a question, the answer and the answer options, for
//! scoring by rank classification as in T0 and in Wang et al. (2022).
//! [`TaskInstance::prompt`] formats it with one of several [`PromptTemplate`]s.
//!
//! The prompted format (`Question: ... Answer: ...` and the other templates) never
//! occurs in pretraining documents: a test checks it. [`TaskFamily::is_held_out`]
//! marks three families (`bigger`, `yes_no`, `next_step`) that a
//! multitask-finetuning experiment should keep out of its training mixture; their
//! knowledge only appears in pretraining, in other words (the comparison, negation,
//! procedure and dialogue sections), so a model can only answer them zero-shot
//! through patterns it learned while pretraining.
//!
//! ```
//! use transformer::corpus::{self, TaskFamily};
//! let docs = corpus::documents(7, 3);
//! assert_eq!(docs, corpus::documents(7, 3)); // the same seed gives the same texts
//! let t = corpus::tasks(TaskFamily::Bigger, 7, 1).remove(0);
//! assert!(t.options.contains(&t.answer));
//! assert!(t.prompt(corpus::PromptTemplate::QuestionAnswer).ends_with("Answer:"));
//! ```

use rand::Rng as _;
use rand::seq::{IndexedRandom, SliceRandom};
use serde::{Deserialize, Serialize};

use crate::rng::{self, Rng};
use crate::{IntoStaticStr, Named, VariantArray};

/// Given names; each scene picks a few.
pub const PEOPLE: [&str; 24] = [
    "Ada", "Ben", "Cleo", "Dan", "Eva", "Finn", "Gus", "Hana", "Ivan", "Jo", "Kai",
    "Lena", "Milo", "Nora", "Omar", "Pia", "Quinn", "Rosa", "Sam", "Tara", "Uma",
    "Vic", "Wren", "Zoe",
];
/// Colours of things.
pub const COLOURS: [&str; 8] =
    ["red", "blue", "green", "yellow", "black", "white", "brown", "grey"];
/// Sizes of things, smallest first: the index is the order that comparisons use.
pub const SIZES: [&str; 4] = ["tiny", "small", "big", "huge"];
/// Kinds of things.
pub const THINGS: [&str; 12] = [
    "cup", "box", "ball", "lamp", "book", "key", "hat", "bag", "chair", "bowl",
    "kite", "coin",
];
/// Kinds of animals, singular and plural.
pub const ANIMALS: [(&str, &str); 8] = [
    ("cat", "cats"),
    ("dog", "dogs"),
    ("fox", "foxes"),
    ("owl", "owls"),
    ("hen", "hens"),
    ("goat", "goats"),
    ("horse", "horses"),
    ("duck", "ducks"),
];
/// Places.
pub const PLACES: [&str; 8] =
    ["kitchen", "garden", "barn", "library", "attic", "shed", "hall", "cellar"];
/// Number words, indexed by value.
pub const NUMBERS: [&str; 13] = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "ten", "eleven", "twelve",
];
/// Actions of procedures: base form, third person, gerund.
pub const ACTIONS: [(&str, &str, &str); 12] = [
    ("wash", "washes", "washing"),
    ("dry", "dries", "drying"),
    ("paint", "paints", "painting"),
    ("open", "opens", "opening"),
    ("close", "closes", "closing"),
    ("fill", "fills", "filling"),
    ("empty", "empties", "emptying"),
    ("move", "moves", "moving"),
    ("lift", "lifts", "lifting"),
    ("check", "checks", "checking"),
    ("clean", "cleans", "cleaning"),
    ("hide", "hides", "hiding"),
];
/// What procedures are for.
pub const GOALS: [&str; 6] = [
    "the fair",
    "the party",
    "the winter",
    "a long trip",
    "the visit of a friend",
    "the spring market",
];

/// Strings that mark the prompted task format; no pretraining document contains any
/// of them.
pub const PROMPT_MARKERS: [&str; 4] = ["Question:", "Answer:", "Q:", "A:"];

/// A person of a scene.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Person {
    pub name: &'static str,
    /// Ages within a scene are distinct.
    pub age: u32,
}

/// A thing of a scene. Kinds within a scene are distinct, so "the cup" is
/// unambiguous.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Thing {
    pub kind: &'static str,
    pub colour: &'static str,
    /// Index into [`SIZES`].
    pub size: usize,
    pub place: &'static str,
    /// Index into [`Scene::people`].
    pub owner: usize,
}

/// A group of animals of one kind in one place. Kinds within a scene are distinct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Herd {
    /// Index into [`ANIMALS`].
    pub animal: usize,
    /// Between 2 and 12.
    pub count: usize,
    pub place: &'static str,
}

/// One step of a procedure: an action (index into [`ACTIONS`]) applied to a thing
/// of the scene.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub action: usize,
    /// Index into [`Scene::things`].
    pub thing: usize,
}

/// A person's plan: distinct steps, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Procedure {
    /// Index into [`Scene::people`].
    pub actor: usize,
    pub goal: &'static str,
    pub steps: Vec<Step>,
}

/// How many of each entity a scene has (inclusive ranges).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SceneSpec {
    pub people: (usize, usize),
    pub things: (usize, usize),
    pub herds: (usize, usize),
    pub steps: (usize, usize),
}

impl Default for SceneSpec {
    /// Two or three people, two to four things, one or two herds, three or four
    /// steps: a description of about 60 to 120 words.
    fn default() -> Self {
        SceneSpec { people: (2, 3), things: (2, 4), herds: (1, 2), steps: (3, 4) }
    }
}

/// One situation of the world, drawn at random.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Scene {
    pub people: Vec<Person>,
    pub things: Vec<Thing>,
    pub herds: Vec<Herd>,
    pub procedure: Procedure,
}

fn between(rng: &mut Rng, (lo, hi): (usize, usize)) -> usize {
    rng.random_range(lo..=hi.max(lo))
}

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    *xs.choose(rng).expect("non-empty list")
}

/// Every pair `(xs[i], xs[j])` with `i < j`, in order of `i`, then `j`.
fn pairs<T>(xs: &[T]) -> impl Iterator<Item = (&T, &T)> {
    xs.iter()
        .enumerate()
        .flat_map(move |(i, a)| xs[i + 1..].iter().map(move |b| (a, b)))
}

impl Scene {
    /// Draw a scene. Ranges are clamped to what the word lists allow (at least two
    /// people and two things, so that comparisons and owners are always possible).
    pub fn sample(rng: &mut Rng, spec: &SceneSpec) -> Scene {
        let n_people = between(rng, spec.people).clamp(2, PEOPLE.len());
        let n_things = between(rng, spec.things).clamp(2, THINGS.len());
        let n_herds = between(rng, spec.herds).clamp(1, ANIMALS.len());
        let mut ages: Vec<u32> = (6..=80).collect();
        ages.shuffle(rng);
        let people = PEOPLE
            .choose_multiple(rng, n_people)
            .zip(ages)
            .map(|(&name, age)| Person { name, age })
            .collect();
        let mut things: Vec<Thing> = THINGS
            .choose_multiple(rng, n_things)
            .map(|&kind| Thing {
                kind,
                colour: pick(rng, &COLOURS),
                size: rng.random_range(0..SIZES.len()),
                place: pick(rng, &PLACES),
                owner: rng.random_range(0..n_people),
            })
            .collect();
        // At least two sizes differ, so every scene has something to compare.
        if things.iter().all(|t| t.size == things[0].size) {
            things[1].size =
                (things[0].size + 1 + rng.random_range(0..SIZES.len() - 1))
                    % SIZES.len();
        }
        let mut kinds: Vec<usize> = (0..ANIMALS.len()).collect();
        kinds.shuffle(rng);
        let herds = kinds[..n_herds]
            .iter()
            .map(|&animal| Herd {
                animal,
                count: rng.random_range(2..=12),
                place: pick(rng, &PLACES),
            })
            .collect();
        let n_steps = between(rng, spec.steps).max(2);
        let mut pairs: Vec<Step> = (0..ACTIONS.len())
            .flat_map(|action| {
                (0..n_things).map(move |thing| Step { action, thing })
            })
            .collect();
        pairs.shuffle(rng);
        // No action twice, so "the step after washing" names one step.
        let mut steps: Vec<Step> = Vec::new();
        for s in pairs {
            if steps.len() < n_steps && steps.iter().all(|t| t.action != s.action) {
                steps.push(s);
            }
        }
        let procedure = Procedure {
            actor: rng.random_range(0..n_people),
            goal: pick(rng, &GOALS),
            steps,
        };
        Scene { people, things, herds, procedure }
    }

    fn owner(&self, t: &Thing) -> &'static str {
        self.people[t.owner].name
    }

    /// The plural noun of a herd.
    pub fn animals(&self, h: &Herd) -> &'static str {
        ANIMALS[h.animal].1
    }

    /// A step in base form ("wash the cup").
    pub fn step_base(&self, s: &Step) -> String {
        format!("{} the {}", ACTIONS[s.action].0, self.things[s.thing].kind)
    }

    fn step_third(&self, s: &Step) -> String {
        format!("{} the {}", ACTIONS[s.action].1, self.things[s.thing].kind)
    }

    fn step_gerund(&self, s: &Step) -> String {
        format!("{} the {}", ACTIONS[s.action].2, self.things[s.thing].kind)
    }
}

/// The kinds of section a pretraining document is made of.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, VariantArray,
)]
pub enum Section {
    /// Who has what, of which colour and size, where; ages; how many animals where.
    Description,
    /// Bigger/smaller and older/younger, stated or reasoned.
    Comparison,
    /// Where things are not.
    Negation,
    /// Lists per place and per owner.
    Inventory,
    /// A person's plan, step by step.
    Procedure,
    /// People asking each other about the scene, in quotation marks.
    Dialogue,
}

impl Section {}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// "a" or "an" before a word.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

/// "a, b and c".
fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The sentences that state everything about one thing, each template chosen at
/// random; templates are added until colour, size, place and owner have all been
/// said.
fn thing_sentences(scene: &Scene, t: &Thing, rng: &mut Rng) -> Vec<String> {
    const COLOUR: u8 = 1;
    const SIZE: u8 = 2;
    const PLACE: u8 = 4;
    const OWNER: u8 = 8;
    let (k, c, s, p, o) =
        (t.kind, t.colour, SIZES[t.size], t.place, scene.owner(t));
    let templates: [(u8, String); 12] = [
        (OWNER | SIZE | COLOUR, format!("{o} has {} {s} {c} {k}.", article(s))),
        (PLACE, format!("The {k} is in the {p}.")),
        (
            OWNER | COLOUR | PLACE,
            format!("{o} keeps {} {c} {k} in the {p}.", article(c)),
        ),
        (PLACE | SIZE, format!("The {k} in the {p} is {s}.")),
        (COLOUR | OWNER, format!("The {c} {k} belongs to {o}.")),
        (
            SIZE | COLOUR | PLACE,
            format!("There is {} {s} {c} {k} in the {p}.", article(s)),
        ),
        (OWNER, format!("The {k} belongs to {o}.")),
        (SIZE | COLOUR, format!("The {k} is {s} and {c}.")),
        (COLOUR, format!("The {k} is {c}.")),
        (PLACE | OWNER, format!("{o} left the {k} in the {p}.")),
        (OWNER | PLACE, format!("In the {p} you can find the {k} of {o}.")),
        (SIZE | OWNER, format!("{o} owns {} {s} {k}.", article(s))),
    ];
    let mut order: Vec<usize> = (0..templates.len()).collect();
    order.shuffle(rng);
    let mut said = 0u8;
    let mut out = Vec::new();
    for i in order {
        let (covers, text) = &templates[i];
        if covers & !said != 0 {
            said |= covers;
            out.push(text.clone());
        }
        if said == COLOUR | SIZE | PLACE | OWNER {
            break;
        }
    }
    out
}

fn herd_sentence(scene: &Scene, h: &Herd, rng: &mut Rng) -> String {
    let (n, a, p) = (NUMBERS[h.count], scene.animals(h), h.place);
    match rng.random_range(0..4) {
        0 => format!("There are {n} {a} in the {p}."),
        1 => format!("{} {a} live in the {p}.", capitalise(n)),
        2 => format!("The {p} has {n} {a}."),
        _ => format!("In the {p} you can see {n} {a}."),
    }
}

fn person_sentence(p: &Person, rng: &mut Rng) -> String {
    match rng.random_range(0..3) {
        0 => format!("{} is {} years old.", p.name, p.age),
        1 => format!("{} is {}.", p.name, p.age),
        _ => format!("{}'s age is {}.", p.name, p.age),
    }
}

/// Plain statements of every fact of the scene, in a random order.
fn description(scene: &Scene, rng: &mut Rng) -> Vec<String> {
    let mut groups: Vec<Vec<String>> = Vec::new();
    for p in &scene.people {
        groups.push(vec![person_sentence(p, rng)]);
    }
    for t in &scene.things {
        groups.push(thing_sentences(scene, t, rng));
    }
    for h in &scene.herds {
        groups.push(vec![herd_sentence(scene, h, rng)]);
    }
    groups.shuffle(rng);
    groups.concat()
}

fn comparison(scene: &Scene, rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    for (a, b) in pairs(&scene.things) {
        if a.size == b.size || !rng.random_bool(0.7) {
            continue;
        }
        let (big, small) = if a.size > b.size { (a, b) } else { (b, a) };
        let (x, y) = (big.kind, small.kind);
        out.push(match rng.random_range(0..4) {
            0 => format!("The {x} is bigger than the {y}."),
            1 => format!("The {y} is smaller than the {x}."),
            2 => format!("Of the {x} and the {y}, the {x} is the bigger one."),
            _ => format!(
                "The {x} is {} and the {y} is {}, so the {x} is bigger.",
                SIZES[big.size], SIZES[small.size]
            ),
        });
    }
    for (a, b) in pairs(&scene.people) {
        if !rng.random_bool(0.7) {
            continue;
        }
        let (old, young) = if a.age > b.age { (a, b) } else { (b, a) };
        let (x, y) = (old.name, young.name);
        out.push(match rng.random_range(0..3) {
            0 => format!("{x} is older than {y}."),
            1 => format!("{y} is younger than {x}."),
            _ => format!(
                "{x} is {} and {y} is {}, so {x} is older.",
                old.age, young.age
            ),
        });
    }
    out
}

fn other_place(place: &str, rng: &mut Rng) -> &'static str {
    loop {
        let p = pick(rng, &PLACES);
        if p != place {
            return p;
        }
    }
}

fn negation(scene: &Scene, rng: &mut Rng) -> Vec<String> {
    scene
        .things
        .iter()
        .map(|t| {
            let (k, p, q) = (t.kind, t.place, other_place(t.place, rng));
            match rng.random_range(0..3) {
                0 => format!("The {k} is not in the {q}."),
                1 => format!("The {k} is in the {p}, not in the {q}."),
                _ => format!("Nobody left the {k} in the {q}; it is in the {p}."),
            }
        })
        .collect()
}

fn inventory(scene: &Scene, rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    let mut places: Vec<&str> = scene
        .things
        .iter()
        .map(|t| t.place)
        .chain(scene.herds.iter().map(|h| h.place))
        .collect();
    places.sort_unstable();
    places.dedup();
    places.shuffle(rng);
    for p in places {
        let mut items: Vec<String> = scene
            .things
            .iter()
            .filter(|t| t.place == p)
            .map(|t| format!("the {} {}", t.colour, t.kind))
            .collect();
        items.extend(
            scene
                .herds
                .iter()
                .filter(|h| h.place == p)
                .map(|h| format!("{} {}", NUMBERS[h.count], scene.animals(h))),
        );
        out.push(if rng.random_bool(0.5) {
            format!("In the {p}: {}.", join_and(&items))
        } else {
            format!("The {p} holds {}.", join_and(&items))
        });
    }
    for (i, person) in scene.people.iter().enumerate() {
        let owned: Vec<String> = scene
            .things
            .iter()
            .filter(|t| t.owner == i)
            .map(|t| format!("the {}", t.kind))
            .collect();
        if !owned.is_empty() {
            let n = owned.len();
            out.push(match rng.random_range(0..2) {
                0 => format!("{} owns {}.", person.name, join_and(&owned)),
                _ => format!(
                    "{} has {} thing{}: {}.",
                    person.name,
                    NUMBERS[n],
                    if n == 1 { "" } else { "s" },
                    join_and(&owned)
                ),
            });
        }
    }
    out
}

fn procedure(scene: &Scene, rng: &mut Rng) -> Vec<String> {
    let pr = &scene.procedure;
    let who = scene.people[pr.actor].name;
    let mut out = vec![match rng.random_range(0..3) {
        0 => format!("{who} gets ready for {}.", pr.goal),
        1 => format!("This is how {who} prepares for {}.", pr.goal),
        _ => format!("{who} has a plan for {}.", pr.goal),
    }];
    let n = pr.steps.len();
    if rng.random_bool(0.3) {
        // Ordered pairs only: "after washing the cup, Ada paints the box".
        for w in pr.steps.windows(2) {
            out.push(if rng.random_bool(0.5) {
                format!(
                    "After {}, {who} {}.",
                    scene.step_gerund(&w[0]),
                    scene.step_third(&w[1])
                )
            } else {
                format!(
                    "Before {}, {who} {}.",
                    scene.step_gerund(&w[1]),
                    scene.step_third(&w[0])
                )
            });
        }
        return out;
    }
    for (i, s) in pr.steps.iter().enumerate() {
        let opener = if i == 0 {
            "First,"
        } else if i + 1 == n {
            "Finally,"
        } else {
            pick(rng, &["Then", "Next,", "After that,"])
        };
        out.push(format!("{opener} {who} {}.", scene.step_third(s)));
    }
    out
}

fn dialogue(scene: &Scene, rng: &mut Rng) -> Vec<String> {
    let mut out = Vec::new();
    let lines = rng.random_range(2..=4);
    for _ in 0..lines {
        let asker = scene.people.choose(rng).expect("people").name;
        let t = scene.things.choose(rng).expect("things");
        let said = |reply: String| format!("\"{reply},\" said {}.", scene.owner(t));
        let (q, a) = match rng.random_range(0..8) {
            0 => (
                format!("Where is the {}?", t.kind),
                said(format!("It is in the {}", t.place)),
            ),
            1 => (
                format!("What colour is the {}?", t.kind),
                said(format!("It is {}", t.colour)),
            ),
            2 => (
                format!("Whose {} is this?", t.kind),
                said(format!("It belongs to {}", scene.owner(t))),
            ),
            3 => {
                let h = scene.herds.choose(rng).expect("herds");
                let a = scene.animals(h);
                (
                    format!("How many {a} are in the {}?", h.place),
                    said(format!("There are {}", NUMBERS[h.count])),
                )
            }
            4 => {
                let q = if rng.random_bool(0.5) {
                    t.place
                } else {
                    other_place(t.place, rng)
                };
                let reply = if q == t.place {
                    "Yes, it is".to_string()
                } else {
                    format!("No, it is in the {}", t.place)
                };
                (format!("Is the {} in the {q}?", t.kind), said(reply))
            }
            5 => {
                let u = scene.things.iter().find(|u| u.size != t.size).unwrap_or(t);
                let big = if u.size > t.size { u } else { t };
                (
                    format!("Which is bigger, the {} or the {}?", t.kind, u.kind),
                    said(format!("The {}", big.kind)),
                )
            }
            6 => {
                let (a, b) = (&scene.people[0], &scene.people[1]);
                let old = if a.age > b.age { a } else { b };
                (
                    format!("Who is older, {} or {}?", a.name, b.name),
                    said(format!("{} is", old.name)),
                )
            }
            _ => {
                let steps = &scene.procedure.steps;
                let i = rng.random_range(0..steps.len() - 1);
                (
                    format!("What comes after {}?", scene.step_gerund(&steps[i])),
                    said(capitalise(&scene.step_gerund(&steps[i + 1]))),
                )
            }
        };
        out.push(format!("\"{q}\" asked {asker}. {a}"));
    }
    out
}

/// Render one section of a scene as sentences.
pub fn render(scene: &Scene, section: Section, rng: &mut Rng) -> Vec<String> {
    match section {
        Section::Description => description(scene, rng),
        Section::Comparison => comparison(scene, rng),
        Section::Negation => negation(scene, rng),
        Section::Inventory => inventory(scene, rng),
        Section::Procedure => procedure(scene, rng),
        Section::Dialogue => dialogue(scene, rng),
    }
}

/// One pretraining document: a fresh scene, its description, then one to three
/// other sections in a random order. Sentences within a section are joined by
/// spaces, sections by newlines.
pub fn document(rng: &mut Rng, spec: &SceneSpec) -> String {
    let scene = Scene::sample(rng, spec);
    let mut extra = Section::VARIANTS[1..].to_vec();
    extra.shuffle(rng);
    let n = rng.random_range(1..=3);
    let mut parts = vec![render(&scene, Section::Description, rng).join(" ")];
    for s in &extra[..n] {
        let text = render(&scene, *s, rng).join(" ");
        if !text.is_empty() {
            parts.push(text);
        }
    }
    parts.join("\n")
}

/// An endless, reproducible stream of pretraining documents.
pub struct DocumentStream {
    rng: Rng,
    spec: SceneSpec,
}

impl DocumentStream {
    /// The stream for `seed`, with scenes of the default size.
    pub fn new(seed: u64) -> Self {
        Self::with_spec(seed, SceneSpec::default())
    }

    /// The stream for `seed`, with scenes drawn from `spec`.
    pub fn with_spec(seed: u64, spec: SceneSpec) -> Self {
        DocumentStream { rng: rng::stream(seed, "corpus.documents"), spec }
    }
}

impl Iterator for DocumentStream {
    type Item = String;
    fn next(&mut self) -> Option<String> {
        Some(document(&mut self.rng, &self.spec))
    }
}

/// The first `n` documents of the stream for `seed`.
pub fn documents(seed: u64, n: usize) -> Vec<String> {
    DocumentStream::new(seed).take(n).collect()
}

/// The question types of the prompted tasks.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum TaskFamily {
    /// "What colour is the cup?" → a colour.
    Colour,
    /// "Where is the cup?" → a place.
    Place,
    /// "Who owns the cup?" → a name.
    Owner,
    /// "How many goats are in the barn?" → a number word.
    Count,
    /// "Who is older, Ada or Ben?" → a name.
    Older,
    /// "Which is bigger, the cup or the box?" → a kind of thing. Held out.
    Bigger,
    /// "Is the cup in the barn?" → yes or no. Held out.
    YesNo,
    /// "What is the step after washing the cup?" → a step in base form. Held out.
    NextStep,
}

impl TaskFamily {
    /// The families to keep out of any prompted training (multitask finetuning) and
    /// to use only for zero-shot evaluation: they differ in kind from the training
    /// families (a comparison of things rather than of people, a yes/no judgement,
    /// an order of events).
    pub fn is_held_out(self) -> bool {
        matches!(
            self,
            TaskFamily::Bigger | TaskFamily::YesNo | TaskFamily::NextStep
        )
    }

    /// The families that may appear in prompted form in training.
    pub fn training() -> Vec<TaskFamily> {
        Self::VARIANTS.iter().copied().filter(|f| !f.is_held_out()).collect()
    }

    /// The held-out families.
    pub fn held_out() -> Vec<TaskFamily> {
        Self::VARIANTS.iter().copied().filter(|f| f.is_held_out()).collect()
    }
}

/// How a task instance is turned into a prompt.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, VariantArray,
)]
pub enum PromptTemplate {
    /// `{context}\nQuestion: {question}\nAnswer:`
    QuestionAnswer,
    /// `{context}\nQ: {question} A:`
    Short,
    /// `{context}\nQuestion: {question} Options: {a}, {b} or {c}.\nAnswer:`
    WithOptions,
}

impl PromptTemplate {
    /// The words every prompt of this template ends with, just before the answer:
    /// the "domain premise" against which an answer's prior likelihood is measured.
    pub fn cue(self) -> &'static str {
        match self {
            PromptTemplate::QuestionAnswer | PromptTemplate::WithOptions => {
                "Answer:"
            }
            PromptTemplate::Short => "A:",
        }
    }
}

/// One prompted task: read the context, answer the question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInstance {
    pub family: TaskFamily,
    /// A description of a fresh scene (plus its procedure for
    /// [`TaskFamily::NextStep`]).
    pub context: String,
    pub question: String,
    /// The correct answer, as the model should write it (no leading space, no full
    /// stop).
    pub answer: String,
    /// Every candidate answer, the correct one included, in a random order: score
    /// each continuation's likelihood and pick the best (rank classification).
    pub options: Vec<String>,
}

impl TaskInstance {
    /// The prompt, ending just before the answer. The target continuation is
    /// [`TaskInstance::target`].
    pub fn prompt(&self, template: PromptTemplate) -> String {
        let (c, q) = (&self.context, &self.question);
        match template {
            PromptTemplate::QuestionAnswer => {
                format!("{c}\nQuestion: {q}\nAnswer:")
            }
            PromptTemplate::Short => format!("{c}\nQ: {q} A:"),
            PromptTemplate::WithOptions => {
                let (last, init) = self.options.split_last().expect("options");
                let list = if init.is_empty() {
                    last.clone()
                } else {
                    format!("{} or {last}", init.join(", "))
                };
                format!("{c}\nQuestion: {q} Options: {list}.\nAnswer:")
            }
        }
    }

    /// What follows the prompt: a space and the answer.
    pub fn target(&self) -> String {
        format!(" {}", self.answer)
    }
}

fn options_with(
    answer: String,
    mut others: Vec<String>,
    n: usize,
    rng: &mut Rng,
) -> Vec<String> {
    others.retain(|o| *o != answer);
    others.sort();
    others.dedup();
    others.shuffle(rng);
    others.truncate(n.saturating_sub(1));
    others.push(answer);
    others.shuffle(rng);
    others
}

/// The kind of answer a question asks for.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
#[derive(IntoStaticStr, VariantArray)]
#[strum(serialize_all = "snake_case")]
pub enum AnswerKind {
    Colour,
    Place,
    Name,
    Number,
    Thing,
    YesNo,
    Step,
}

impl AnswerKind {
    /// A random answer of this kind, written as a task's answers are ("seven",
    /// "wash the cup").
    pub fn sample(self, rng: &mut Rng) -> String {
        match self {
            AnswerKind::Colour => pick(rng, &COLOURS).to_string(),
            AnswerKind::Place => pick(rng, &PLACES).to_string(),
            AnswerKind::Name => pick(rng, &PEOPLE).to_string(),
            AnswerKind::Number => {
                NUMBERS[rng.random_range(2..NUMBERS.len())].to_string()
            }
            AnswerKind::Thing => pick(rng, &THINGS).to_string(),
            AnswerKind::YesNo => pick(rng, &["yes", "no"]).to_string(),
            AnswerKind::Step => {
                format!("{} the {}", pick(rng, &ACTIONS).0, pick(rng, &THINGS))
            }
        }
    }
}

impl TaskFamily {
    /// The kinds of answer a group of families asks for, without repeats.
    pub fn answer_kinds(families: &[TaskFamily]) -> Vec<AnswerKind> {
        let mut k: Vec<AnswerKind> =
            families.iter().map(|f| f.answer_kind()).collect();
        k.sort();
        k.dedup();
        k
    }

    /// The kind of answer the family's question asks for.
    pub fn answer_kind(self) -> AnswerKind {
        match self {
            TaskFamily::Colour => AnswerKind::Colour,
            TaskFamily::Place => AnswerKind::Place,
            TaskFamily::Owner | TaskFamily::Older => AnswerKind::Name,
            TaskFamily::Count => AnswerKind::Number,
            TaskFamily::Bigger => AnswerKind::Thing,
            TaskFamily::YesNo => AnswerKind::YesNo,
            TaskFamily::NextStep => AnswerKind::Step,
        }
    }
}

impl TaskInstance {
    /// The same question with options of different kinds: the correct answer and
    /// one random answer of every other kind in `kinds`, in a random order.
    /// Choosing well needs no reading of the scene, only an understanding of what
    /// the question asks for.
    pub fn with_kind_options(
        &self,
        kinds: &[AnswerKind],
        rng: &mut Rng,
    ) -> TaskInstance {
        let own = self.family.answer_kind();
        let mut others: Vec<AnswerKind> =
            kinds.iter().copied().filter(|&k| k != own).collect();
        others.sort();
        others.dedup();
        let mut options: Vec<String> =
            others.iter().map(|k| k.sample(rng)).collect();
        options.push(self.answer.clone());
        options.shuffle(rng);
        TaskInstance { options, ..self.clone() }
    }
}

/// Draw one instance of `family` from `rng`: a fresh scene, its description as
/// context.
pub fn task(family: TaskFamily, rng: &mut Rng, spec: &SceneSpec) -> TaskInstance {
    let scene = Scene::sample(rng, spec);
    let mut context = render(&scene, Section::Description, rng).join(" ");
    let s = |x: &str| x.to_string();
    let t = scene.things.choose(rng).expect("things").clone();
    let (question, answer, options) = match family {
        TaskFamily::Colour => (
            format!("What colour is the {}?", t.kind),
            s(t.colour),
            options_with(s(t.colour), COLOURS.map(s).to_vec(), 4, rng),
        ),
        TaskFamily::Place => (
            format!("Where is the {}?", t.kind),
            s(t.place),
            options_with(s(t.place), PLACES.map(s).to_vec(), 4, rng),
        ),
        TaskFamily::Owner => {
            let names: Vec<String> =
                scene.people.iter().map(|p| s(p.name)).collect();
            (
                format!("Who owns the {}?", t.kind),
                s(scene.owner(&t)),
                options_with(s(scene.owner(&t)), names, 4, rng),
            )
        }
        TaskFamily::Count => {
            let h = scene.herds.choose(rng).expect("herds");
            let a = NUMBERS[h.count];
            let others = (2..=12).map(|n| s(NUMBERS[n])).collect();
            (
                format!("How many {} are in the {}?", scene.animals(h), h.place),
                s(a),
                options_with(s(a), others, 4, rng),
            )
        }
        TaskFamily::Older => {
            let pair: Vec<&Person> = scene.people.choose_multiple(rng, 2).collect();
            let old = if pair[0].age > pair[1].age { pair[0] } else { pair[1] };
            let names = vec![s(pair[0].name), s(pair[1].name)];
            (
                format!("Who is older, {} or {}?", pair[0].name, pair[1].name),
                s(old.name),
                options_with(s(old.name), names, 2, rng),
            )
        }
        TaskFamily::Bigger => {
            let unequal: Vec<(&Thing, &Thing)> =
                pairs(&scene.things).filter(|(a, b)| a.size != b.size).collect();
            let &(a, b) =
                unequal.choose(rng).expect("scenes always have two sizes");
            let (a, b) = if rng.random_bool(0.5) { (a, b) } else { (b, a) };
            let big = if a.size > b.size { a } else { b };
            let names = vec![s(a.kind), s(b.kind)];
            (
                format!("Which is bigger, the {} or the {}?", a.kind, b.kind),
                s(big.kind),
                options_with(s(big.kind), names, 2, rng),
            )
        }
        TaskFamily::YesNo => {
            let place = if rng.random_bool(0.5) {
                t.place
            } else {
                other_place(t.place, rng)
            };
            let answer = if place == t.place { "yes" } else { "no" };
            (
                format!("Is the {} in the {place}?", t.kind),
                s(answer),
                options_with(s(answer), vec![s("yes"), s("no")], 2, rng),
            )
        }
        TaskFamily::NextStep => {
            context.push('\n');
            context.push_str(&render(&scene, Section::Procedure, rng).join(" "));
            let steps = &scene.procedure.steps;
            let i = rng.random_range(0..steps.len() - 1);
            let answer = scene.step_base(&steps[i + 1]);
            let others = steps.iter().map(|st| scene.step_base(st)).collect();
            (
                format!("What is the step after {}?", scene.step_gerund(&steps[i])),
                answer.clone(),
                options_with(answer, others, 4, rng),
            )
        }
    };
    TaskInstance { family, context, question, answer, options }
}

/// `n` instances of `family`, reproducible from `seed` (each family has its own
/// stream, so asking for more of one family never changes another's).
pub fn tasks(family: TaskFamily, seed: u64, n: usize) -> Vec<TaskInstance> {
    let mut rng = rng::stream(seed, &format!("corpus.tasks.{}", family.name()));
    let spec = SceneSpec::default();
    (0..n).map(|_| task(family, &mut rng, &spec)).collect()
}

/// Words of a text: maximal runs of letters, digits and apostrophes.
pub fn words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_reproducible_and_varied() {
        let a = documents(3, 200);
        assert_eq!(a, documents(3, 200));
        assert_ne!(a, documents(4, 200));
        let mut unique = a.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), a.len());
    }

    #[test]
    fn pretraining_never_contains_the_prompt_format() {
        for d in documents(5, 2000) {
            for m in PROMPT_MARKERS {
                assert!(!d.contains(m), "{m:?} in {d}");
            }
        }
    }

    #[test]
    fn every_section_kind_appears() {
        let docs = documents(1, 500).join("\n");
        for needle in [
            "bigger than",
            " not in the ",
            "In the ",
            "First,",
            "\" asked ",
            " years old.",
        ] {
            assert!(docs.contains(needle), "{needle}");
        }
    }

    #[test]
    fn every_task_answer_is_an_option_and_is_stated_or_derivable() {
        for &family in TaskFamily::VARIANTS {
            for t in tasks(family, 11, 300) {
                assert!(t.options.contains(&t.answer), "{t:?}");
                assert!(t.options.len() >= 2, "{t:?}");
                let mut o = t.options.clone();
                o.sort();
                o.dedup();
                assert_eq!(o.len(), t.options.len(), "{t:?}");
                match family {
                    TaskFamily::Colour
                    | TaskFamily::Place
                    | TaskFamily::Owner
                    | TaskFamily::Count => {
                        assert!(
                            t.context.contains(&t.answer)
                                || t.context.contains(&capitalise(&t.answer)),
                            "{t:?}"
                        )
                    }
                    _ => {}
                }
                for m in PROMPT_MARKERS {
                    assert!(!t.context.contains(m));
                }
            }
        }
    }

    #[test]
    fn held_out_and_training_families_partition_all() {
        let mut all = TaskFamily::training();
        all.extend(TaskFamily::held_out());
        all.sort();
        assert_eq!(all, TaskFamily::VARIANTS.to_vec());
        assert_eq!(TaskFamily::held_out().len(), 3);
    }

    #[test]
    fn yes_no_answers_are_balanced() {
        let yes = tasks(TaskFamily::YesNo, 2, 1000)
            .iter()
            .filter(|t| t.answer == "yes")
            .count();
        assert!((400..600).contains(&yes), "{yes}");
    }

    #[test]
    fn prompts_end_before_the_answer() {
        let t = tasks(TaskFamily::NextStep, 1, 1).remove(0);
        for &tpl in PromptTemplate::VARIANTS {
            let p = t.prompt(tpl);
            assert!(p.starts_with(&t.context));
            assert!(p.ends_with("Answer:") || p.ends_with("A:"));
        }
        assert_eq!(t.target(), format!(" {}", t.answer));
    }
}

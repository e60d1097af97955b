//! What one run analyses: which model files, the passages whose attention is
//! measured, and the dialogue.

use std::path::PathBuf;

use anyhow::{Context, bail};
use transformer::chapter::{Chapter, Outputs, Preset};

use crate::fetch;
use crate::fixtures;
use crate::outputs::outputs;
use crate::report::compute;

/// The chapter's flags, each an override of the preset.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Args {
    /// Folder of the fetched models (default: $DOOT_MODELS, else target/models/).
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Tokens of each passage whose attention matrices are measured.
    #[arg(long, value_name = "N")]
    pub tokens: Option<usize>,
    /// Most tokens generated per reply in the chat.
    #[arg(long, value_name = "N")]
    pub reply_tokens: Option<usize>,
}

/// Where the two models are.
#[derive(Debug)]
pub enum Models {
    /// The real models, fetched into this folder.
    Fetched(PathBuf),
    /// Tiny random models of the same formats, written for this run (the quick
    /// configuration); the folder goes away with the settings.
    Tiny(tempfile::TempDir),
}

impl Models {
    /// The folder holding `all-minilm-l6-v2/` and `smollm2-135m-instruct/`.
    pub fn dir(&self) -> PathBuf {
        match self {
            Models::Fetched(d) => d.clone(),
            Models::Tiny(t) => t.path().to_path_buf(),
        }
    }

    /// True for the real models.
    pub fn real(&self) -> bool {
        matches!(self, Models::Fetched(_))
    }
}

/// Everything one run uses.
#[derive(Debug)]
pub struct Settings {
    pub preset: Preset,
    pub models: Models,
    /// Passage length in tokens, the same for both models.
    pub tokens: usize,
    pub passages: Vec<&'static str>,
    /// The user's messages, one per turn.
    pub turns: Vec<&'static str>,
    pub reply_tokens: usize,
    /// Tokens generated without any cache (the whole sequence run again at every
    /// step), to time decoding without it.
    pub uncached_tokens: usize,
}

/// Four passages of ordinary prose, each longer than the largest measured length
/// (192) in both tokenizers (a test checks it).
pub const PASSAGES: [&str; 4] = [
    "The river rises in the hills to the north and runs for about two hundred \
     kilometres before it reaches the sea. For most of its length it is slow and wide, \
     and the towns along its banks grew up around the bridges and the ferries that \
     crossed it. In spring the snow melts in the hills and the water climbs quickly, \
     so the older houses stand on stone platforms well above the summer level. Farmers \
     in the valley grow wheat, barley and beans, and in the autumn the roads are busy \
     with carts and lorries taking the harvest to the markets in the larger towns. A \
     railway was built along the river more than a century ago, and it still carries \
     passengers and freight every day. In the last few years the old mills beside the \
     weirs have been turned into flats and workshops, and a path now follows the bank \
     from the source to the estuary, so that walkers can cover the whole river in about \
     ten days. Birds that had left the valley when the water was dirty have come back, \
     and in the evenings herons stand in the shallows below the bridges, waiting for \
     fish. Anglers say the trout are larger than they have been for fifty years.",
    "To make bread, mix flour, water, salt and a little yeast, then knead the dough \
     until it is smooth and springs back when you press it. Leave it in a warm place \
     for an hour or two, until it has doubled in size. Knock it back, shape it into a \
     loaf and let it rise again while the oven heats. Bake it until the crust is brown \
     and the loaf sounds hollow when you tap the bottom. Good bread needs time more \
     than skill: a slow rise in a cool kitchen gives a better flavour than a fast one \
     in a hot kitchen. Once it has cooled, keep the loaf wrapped in a cloth rather than \
     in plastic, so that the crust stays crisp for another day or two. If you want a \
     softer crumb, add a spoonful of butter or oil to the dough, and if you want a \
     darker crust, brush the top with milk before it goes into the oven. Whole wheat \
     flour drinks more water than white flour, so a brown loaf needs a wetter dough and \
     a little more patience. Stale bread is never wasted: it makes good toast, crumbs \
     for frying, and the base of many soups and puddings.",
    "A computer program is a list of instructions that a machine follows one after \
     another. Most programs read some input, do some work on it and write some output. \
     The work is broken into small functions, each of which does one thing and can be \
     tested on its own. When a program grows, its authors spend more time reading code \
     than writing it, so clear names and short functions matter more than clever \
     tricks. Tests check that each function still gives the right answer after a \
     change, and a compiler catches many mistakes before the program ever runs. A \
     program that is easy to change is worth more than one that is slightly faster, \
     because every useful program will be changed many times over its life. Most of the \
     cost of software comes after it is first written, when people who did not write it \
     have to understand it, fix it and extend it. For that reason a good team writes down \
     why a piece of code exists, not only what it does, and keeps the design simple \
     enough that a newcomer can find their way around it in a week. Careful reviews of \
     each change catch mistakes early, while they are still cheap to fix.",
    "The museum opens at nine in the morning and closes at five in the afternoon, \
     except on Mondays, when it is closed all day. Entry to the main collection is \
     free, but the special exhibitions on the upper floor need a ticket, which you can \
     buy at the desk by the entrance. The building was a railway station until the \
     nineteen sixties, and the great hall still has its iron roof and its old clock. \
     Visitors with small children can borrow a map with a trail of questions to \
     answer, and there is a cafe in the garden that serves soup, sandwiches and cakes. \
     Large bags must be left in the lockers near the cloakroom on the ground floor. \
     Photographs are allowed in most rooms, but not with a flash, and not in the room \
     of old maps, where the light is kept low to protect the paper. Guided tours in \
     several languages leave from the main hall every hour, and they last about forty \
     minutes. On the first Friday of each month the museum stays open until nine in the \
     evening, with music in the great hall and talks by the curators.",
];

/// The user's side of the chat.
pub const TURNS: [&str; 3] = [
    "What is the capital of France?",
    "Name one famous museum in that city.",
    "Thank you! Now give me one short tip for learning a new language.",
];

impl Chapter for Settings {
    type Args = Args;
    type Error = anyhow::Error;

    fn new(preset: Preset, args: &Args) -> anyhow::Result<Self> {
        let (tokens, reply_tokens, uncached_tokens) = match preset {
            Preset::Quick => (12, 4, 3),
            Preset::Default => (128, 40, 8),
            Preset::Large => (192, 64, 16),
        };
        let models = match (&args.models, preset) {
            (Some(dir), Preset::Quick) => {
                bail!(
                    "--models {}: the quick configuration runs tiny models of its \
                     own; use --config default to analyse the fetched ones",
                    dir.display()
                )
            }
            (None, Preset::Quick) => {
                let dir = tempfile::Builder::new()
                    .prefix("real-models-tiny-")
                    .tempdir()
                    .context("creating a folder for the tiny models")?;
                fixtures::write_tiny_models(dir.path())?;
                Models::Tiny(dir)
            }
            (Some(dir), _) => Models::Fetched(dir.clone()),
            (None, _) => Models::Fetched(fetch::default_dir()),
        };
        let tokens = args.tokens.unwrap_or(tokens);
        let limit = if models.real() { 192 } else { fixtures::BERT_POSITIONS - 1 };
        if !(4..=limit).contains(&tokens) {
            bail!("--tokens {tokens}: must be between 4 and {limit}");
        }
        let reply_tokens = args.reply_tokens.unwrap_or(reply_tokens);
        // The tiny models' context (1024 positions) holds the three turns at up to
        // 64 tokens a reply; the real decoder's (8192) at up to 256.
        let most = if models.real() { 256 } else { 64 };
        if !(2..=most).contains(&reply_tokens) {
            bail!("--reply-tokens {reply_tokens}: must be between 2 and {most}");
        }
        Ok(Settings {
            preset,
            models,
            tokens,
            passages: PASSAGES.to_vec(),
            turns: TURNS.to_vec(),
            reply_tokens,
            uncached_tokens: uncached_tokens.min(reply_tokens),
        })
    }

    fn run(&self) -> anyhow::Result<Outputs> {
        outputs(&compute(self)?)
    }
}

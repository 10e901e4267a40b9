//! Model-backed answer scorers (`oae_quality::scorers::MODEL_SCORERS`), one file each and one
//! line in [`load`]: they need models, so they live beside the model code (`pass@1`, which
//! runs after the replays for the same reason but needs no model, lives in oae-quality).

pub mod minilm;

use oae_quality::ModelScorer;

use crate::Error;

/// Loads the model scorer called `name` (from the model cache).
pub fn load(name: &str) -> Result<Box<dyn ModelScorer>, Error> {
    match name {
        "minilm" => Ok(Box::new(minilm::MiniLm::from_cache()?)),
        "pass@1" => Ok(Box::new(oae_quality::scorers::pass_at_1::PassAt1)),
        other => Err(Error::Model(format!("no model scorer called `{other}`"))),
    }
}

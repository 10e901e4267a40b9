//! Task workloads: requests drawn from a task file, each carrying its reference answers.
//!
//! `task = { path = "qa.jsonl", knowledge = "kb", groups = 3, limit = 300, sample = 100, seed = 7, template = "auto",
//! scorers = ["em", "f1"], max_new_tokens = 32, shuffle = true, noise = { typos = 0.03 },
//! reasoning = "cot", reasoning_budget = 256 }`
//! in a `[[workloads]]` entry replaces prompt synthesis: request *i* asks item *i* of the
//! drawn items (cycling when there are more requests than items), rendered by the template,
//! with the optional noise applied to its question.

use std::sync::Arc;

use oae_quality::perturb::Noise;
use oae_quality::reasoning::Reasoning;
use oae_quality::template::Template;
use oae_quality::{TaskItem, task};
use serde::Deserialize;
use serde_json::json;

use crate::ConfigError;
use crate::config::{ConfigTable, PositiveU32};
use crate::knowledge::KnowledgeBase;
use crate::rng::{open01, seeded};

/// What a request carries of its task: the item and the scorers that judge the answer.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskRef {
    /// The item asked.
    pub item: Arc<TaskItem>,
    /// Scorer names (registered in `oae_quality::scorers`).
    pub scorers: Arc<[String]>,
    /// How the task asked for the answer (`None`: the template's own wording); with it the
    /// harness counts reasoning and answer tokens, and with chain of thought scores the
    /// answer part alone.
    pub reasoning: Option<Reasoning>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskConfig {
    path: Option<String>,
    dataset: Option<String>,
    #[serde(default)]
    subset: Vec<String>,
    groups: Option<PositiveU32>,
    limit: Option<PositiveU32>,
    sample: Option<PositiveU32>,
    seed: Option<u64>,
    template: Option<String>,
    scorers: Option<Vec<String>>,
    max_new_tokens: Option<PositiveU32>,
    shuffle: Option<bool>,
    noise: Option<Noise>,
    knowledge: Option<String>,
    reasoning: Option<String>,
    reasoning_budget: Option<PositiveU32>,
}

/// A parsed `task = {...}`: the items drawn, in request order, and how to ask them.
#[derive(Debug)]
pub struct TaskSpec {
    /// The task file, resolved against the suite's directory.
    pub path: std::path::PathBuf,
    /// Items in the order requests ask them.
    pub items: Vec<Arc<TaskItem>>,
    /// Items in the file.
    pub items_in_file: usize,
    /// The catalog dataset it came from, if any.
    pub dataset: Option<String>,
    /// Prompt template.
    pub template: Template,
    /// Scorers applied to every answer, when the workload names them (else each item gets
    /// its answer type's defaults).
    pub scorers: Option<Arc<[String]>>,
    /// Generation cap when the workload gives no `output_tokens` (with chain of thought, the
    /// answer's allowance plus the reasoning budget).
    pub max_new_tokens: u32,
    /// Direct answers or chain of thought (`None`: the template's own wording).
    pub reasoning: Option<Reasoning>,
    /// Tokens allowed for the reasoning before the answer (chain of thought only).
    pub reasoning_budget: Option<u32>,
    /// Noise applied to the questions.
    pub noise: Noise,
    /// Seed of the draw and the noise (default: the run's seed).
    pub seed: Option<u64>,
    /// The `[[knowledge]]` base its items are asked about (only items whose supporting
    /// documents it holds are drawn; the prompt is the question alone unless a template says
    /// otherwise).
    pub knowledge: Option<String>,
    subset: Vec<String>,
    groups: Option<u32>,
    sample: Option<usize>,
    shuffle: bool,
}

/// The file a `path` or `dataset` key names: `path` resolved against the suite's folder, or
/// `file(entry, cache root)` of a fetched catalog dataset. Errors name the key and the fix.
pub(crate) fn source_file(
    table: &ConfigTable,
    path: Option<&str>,
    dataset: Option<&str>,
    file: impl Fn(&oae_quality::datasets::Entry, &std::path::Path) -> std::path::PathBuf,
) -> Result<std::path::PathBuf, ConfigError> {
    match (path, dataset) {
        (Some(p), None) => Ok(table.source().resolve(p)),
        (None, Some(name)) => {
            let entry = oae_quality::datasets::entry(name).ok_or_else(|| {
                table.error(
                    "dataset",
                    format!("unknown dataset `{name}`; known: {}", oae_quality::datasets::names()),
                )
            })?;
            let root = oae_quality::datasets::cache_dir();
            if !entry.present(&root) {
                return Err(table.error(
                    "dataset",
                    format!(
                        "dataset `{name}` is not in the cache ({}); fetch it once with `oae datasets fetch {name}`",
                        root.display()
                    ),
                ));
            }
            Ok(file(entry, &root))
        }
        (Some(_), Some(_)) => Err(table.error("dataset", "give `path` or `dataset`, not both")),
        (None, None) => Err(table.error(
            "path",
            "missing: give `path = \"….jsonl\"` (oae's format) or `dataset = \"squad\"` (`oae datasets list`)",
        )),
    }
}

/// Default generation cap of a task workload.
pub const DEFAULT_MAX_NEW_TOKENS: u32 = 64;

/// Tokens allowed for chain-of-thought reasoning unless `reasoning_budget` says otherwise.
pub const DEFAULT_REASONING_BUDGET: u32 = 256;

impl TaskSpec {
    /// Parses and loads a `task` table (the file is read and checked now, so a bad row fails
    /// the suite before anything runs).
    pub fn from_table(table: ConfigTable, knowledge: &[Arc<KnowledgeBase>]) -> Result<Self, ConfigError> {
        let c: TaskConfig = table.decode()?;
        let path = source_file(&table, c.path.as_deref(), c.dataset.as_deref(), |e, root| {
            e.tasks_path(root)
        })?;
        if c.path.is_some() && !path.is_file() {
            return Err(table.error("path", format!("no task file at {}", path.display())));
        }
        let all = task::load(&path)?;
        let items_in_file = all.len();
        // Knowledge methods retrieve or preload the passages: the prompt is the question.
        let default_template = if c.knowledge.is_some() { "{question}" } else { "auto" };
        let template = Template::parse(c.template.as_deref().unwrap_or(default_template))
            .map_err(|m| table.error("template", m))?;
        let mut items: Vec<TaskItem> = all;
        if let Some(name) = &c.knowledge {
            let kb = crate::knowledge::find(knowledge, name, &table, "knowledge")?;
            if matches!(template, Template::QaContext) {
                return Err(table.error(
                    "template",
                    "template \"qa-context\" puts each item's gold passage in its prompt, which defeats a knowledge base; leave `template` out (the question alone) or use one without {context}",
                ));
            }
            let ids = kb.ids();
            items.retain(|i| i.doc_ids.iter().any(|d| ids.contains(d.as_str())));
            if items.is_empty() {
                return Err(table.error(
                    "knowledge",
                    format!(
                        "no item of {} names a document of knowledge base `{name}` in its doc_ids; check the base's subset/limit",
                        path.display()
                    ),
                ));
            }
        }
        if !c.subset.is_empty() {
            for s in &c.subset {
                if !items.iter().any(|i| i.group.as_deref() == Some(s)) {
                    return Err(table.error(
                        "subset",
                        format!("no item of {} has \"group\": \"{s}\"", path.display()),
                    ));
                }
            }
            items.retain(|i| i.group.as_ref().is_some_and(|g| c.subset.contains(g)));
        }
        if let Some(g) = c.groups {
            let mut kept: Vec<String> = Vec::new();
            for i in &items {
                let g_name = i.group.clone().unwrap_or_default();
                if !kept.contains(&g_name) {
                    kept.push(g_name);
                }
            }
            if items.iter().all(|i| i.group.is_none()) {
                return Err(table.error(
                    "groups",
                    "the items have no \"group\" field to draw whole groups by; use `limit`",
                ));
            }
            kept.truncate(g.get() as usize);
            items.retain(|i| kept.contains(&i.group.clone().unwrap_or_default()));
        }
        if let Some(l) = c.limit {
            items.truncate(l.get() as usize);
        }
        if items.is_empty() {
            return Err(table.error("subset", format!("no items of {} are left to ask", path.display())));
        }
        template.check(&items).map_err(|(_, m)| table.error("template", m))?;
        let noise = c.noise.unwrap_or_default();
        noise.check().map_err(|(f, m)| table.error(&format!("noise.{f}"), m))?;
        if let Some(names) = &c.scorers {
            for n in names {
                if !oae_quality::scorers::known(n) {
                    return Err(table.error(
                        "scorers",
                        format!("unknown scorer `{n}`; known: {}", oae_quality::scorers::all_names()),
                    ));
                }
            }
            if names.iter().any(|n| n == "pass@1") {
                if let Some(i) = items.iter().find(|i| i.tests.is_none()) {
                    return Err(table.error(
                        "scorers",
                        format!(
                            "scorer `pass@1` needs each item's unit tests, but item `{}` has no `tests` (HumanEval's come with `oae datasets fetch humaneval`)",
                            i.id
                        ),
                    ));
                }
                // Generated code runs only with the user's consent and a working sandbox.
                oae_quality::scorers::pass_at_1::ready().map_err(|m| table.error("scorers", m))?;
            }
        }
        let reasoning = c
            .reasoning
            .as_deref()
            .map(Reasoning::parse)
            .transpose()
            .map_err(|m| table.error("reasoning", m))?;
        let reasoning_budget = match (reasoning, c.reasoning_budget) {
            (Some(Reasoning::Cot), b) => Some(b.map_or(DEFAULT_REASONING_BUDGET, |b| b.get())),
            (_, Some(_)) => {
                return Err(table.error(
                    "reasoning_budget",
                    "a reasoning budget needs reasoning = \"cot\"; drop it or ask for chain of thought",
                ));
            }
            (_, None) => None,
        };
        let answer_tokens = c.max_new_tokens.map_or(DEFAULT_MAX_NEW_TOKENS, |m| m.get());
        Ok(Self {
            path,
            items: items.into_iter().map(Arc::new).collect(),
            items_in_file,
            dataset: c.dataset,
            template,
            scorers: c.scorers.map(Into::into),
            max_new_tokens: answer_tokens + reasoning_budget.unwrap_or(0),
            reasoning,
            reasoning_budget,
            noise,
            seed: c.seed,
            knowledge: c.knowledge,
            subset: c.subset,
            groups: c.groups.map(|g| g.get()),
            sample: c.sample.map(|n| n.get() as usize),
            shuffle: c.shuffle.unwrap_or(true),
        })
    }

    /// The item order for a run with `run_seed`: with `sample = N`, a seeded draw of N of
    /// the selected items; then a seeded shuffle (unless `shuffle = false`, which keeps the
    /// file's order). `limit` is taken before both, so it keeps the file's first items.
    pub fn order(&self, run_seed: u64) -> Vec<Arc<TaskItem>> {
        let mut rng = seeded(self.seed.unwrap_or(run_seed), &["task-order"]);
        let mut idx: Vec<usize> = (0..self.items.len()).collect();
        if self.shuffle || self.sample.is_some() {
            for i in (1..idx.len()).rev() {
                let j = ((open01(&mut rng) * (i + 1) as f64) as usize).min(i);
                idx.swap(i, j);
            }
        }
        if let Some(n) = self.sample {
            idx.truncate(n);
            if !self.shuffle {
                idx.sort_unstable();
            }
        }
        idx.into_iter().map(|i| self.items[i].clone()).collect()
    }

    /// The prompt of `item` (noise applied to its question or verbatim prompt).
    pub fn prompt(&self, item: &TaskItem, run_seed: u64) -> String {
        if self.noise.is_none() {
            return self.template.render_for(item, self.reasoning);
        }
        let seed = self.seed.unwrap_or(run_seed);
        let mut noisy = item.clone();
        if let Some(q) = &item.question {
            noisy.question = Some(self.noise.apply(q, seed, &item.id));
        } else if let Some(p) = &item.prompt {
            noisy.prompt = Some(self.noise.apply(p, seed, &item.id));
        }
        self.template.render_for(&noisy, self.reasoning)
    }

    /// The reference a request carries, with the scorers that judge its answer.
    pub fn reference(&self, item: &Arc<TaskItem>) -> TaskRef {
        TaskRef {
            item: item.clone(),
            scorers: self.scorers.clone().unwrap_or_else(|| {
                item.answer_type
                    .default_scorers()
                    .iter()
                    .map(|s| s.to_string())
                    .collect()
            }),
            reasoning: self.reasoning,
        }
    }

    /// Whether every answer of this task is scored by `scorer`.
    pub fn scores_every_answer_with(&self, scorer: &str) -> bool {
        match &self.scorers {
            Some(names) => names.iter().any(|n| n == scorer),
            None => self
                .items
                .iter()
                .all(|i| i.answer_type.default_scorers().contains(&scorer)),
        }
    }

    /// Whether some answer of this task is scored by `scorer`.
    pub fn scores_any_answer_with(&self, scorer: &str) -> bool {
        match &self.scorers {
            Some(names) => names.iter().any(|n| n == scorer),
            None => self
                .items
                .iter()
                .any(|i| i.answer_type.default_scorers().contains(&scorer)),
        }
    }

    /// The scorers used, for messages: the named ones, or each answer type's defaults.
    pub fn scorer_names(&self) -> String {
        match &self.scorers {
            Some(names) => names.join(", "),
            None => {
                let mut types: Vec<_> = self.items.iter().map(|i| i.answer_type).collect();
                types.dedup();
                types.sort_by_key(|t| t.as_str());
                types.dedup();
                types
                    .iter()
                    .map(|t| format!("{} for {} items", t.default_scorers().join("+"), t.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        }
    }

    /// For run.json.
    pub fn describe(&self) -> serde_json::Value {
        json!({
            "path": self.path.display().to_string(),
            "dataset": self.dataset,
            "items_in_file": self.items_in_file,
            "items_drawn": self.items.len(),
            "subset": self.subset,
            "groups": self.groups,
            "sample": self.sample,
            "shuffle": self.shuffle,
            "seed": self.seed,
            "template": self.template.name(),
            "scorers": self.scorers.as_deref().map_or_else(|| json!("by answer type"), |s| json!(s)),
            "max_new_tokens": self.max_new_tokens,
            "noise": self.noise,
            "knowledge": self.knowledge,
            "reasoning": self.reasoning.map(Reasoning::as_str),
            "reasoning_budget": self.reasoning_budget,
        })
    }
}

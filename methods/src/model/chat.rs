//! Chat templates for instruct models.
//!
//! Models ship their template as Jinja source (`tokenizer.chat_template` in GGUF,
//! `chat_template` in `tokenizer_config.json`). Rather than embed a Jinja engine, oae
//! recognises the few template families small instruct models use by their markers and
//! renders them natively; a template it does not recognise is reported, and the method's
//! `chat = "off"` serves raw prompts. A benchmark request is one user turn (after an
//! optional system turn), followed by the assistant header, so the model answers.

/// A recognised template family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChatTemplate {
    /// `<|im_start|>role\n…<|im_end|>\n` (SmolLM2, Qwen2), with the template's default
    /// system message when it has one.
    ChatMl {
        /// System message the template inserts when the conversation has none.
        default_system: Option<String>,
    },
    /// Llama 3: `<|start_header_id|>role<|end_header_id|>\n\n…<|eot_id|>`.
    Llama3,
    /// Llama 2 / Mistral: `[INST] … [/INST]` (system text folded into the first turn).
    Inst,
}

impl ChatTemplate {
    /// Recognises a Jinja template by its markers; `None` when it is not a known family.
    pub fn detect(jinja: &str) -> Option<Self> {
        if jinja.contains("<|im_start|>") {
            Some(ChatTemplate::ChatMl {
                default_system: default_chatml_system(jinja),
            })
        } else if jinja.contains("<|start_header_id|>") {
            Some(ChatTemplate::Llama3)
        } else if jinja.contains("[INST]") {
            Some(ChatTemplate::Inst)
        } else {
            None
        }
    }

    /// The family's name, for run.json.
    pub fn name(&self) -> &'static str {
        match self {
            ChatTemplate::ChatMl { .. } => "chatml",
            ChatTemplate::Llama3 => "llama3",
            ChatTemplate::Inst => "inst",
        }
    }

    /// The special token that ends an assistant turn, when the family has its own.
    pub fn end_of_turn(&self) -> Option<&'static str> {
        match self {
            ChatTemplate::ChatMl { .. } => Some("<|im_end|>"),
            ChatTemplate::Llama3 => Some("<|eot_id|>"),
            ChatTemplate::Inst => None,
        }
    }

    /// Renders one user turn (after `system`, or the template's default system message)
    /// and opens the assistant's turn. A begin-of-sequence token is the tokenizer's to add.
    pub fn render(&self, user: &str, system: Option<&str>) -> String {
        match self {
            ChatTemplate::ChatMl { default_system } => {
                let mut s = String::new();
                if let Some(sys) = system.or(default_system.as_deref()) {
                    s.push_str(&format!("<|im_start|>system\n{sys}<|im_end|>\n"));
                }
                s.push_str(&format!("<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n"));
                s
            }
            ChatTemplate::Llama3 => {
                let mut s = String::new();
                if let Some(sys) = system {
                    s.push_str(&format!(
                        "<|start_header_id|>system<|end_header_id|>\n\n{sys}<|eot_id|>"
                    ));
                }
                s.push_str(&format!(
                    "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
                ));
                s
            }
            ChatTemplate::Inst => match system {
                Some(sys) => format!("[INST] {sys}\n\n{user} [/INST]"),
                None => format!("[INST] {user} [/INST]"),
            },
        }
    }
}

/// The literal system message a ChatML template inserts when none is given, e.g. SmolLM2's
/// `<|im_start|>system\nYou are a helpful AI assistant named SmolLM…<|im_end|>`.
fn default_chatml_system(jinja: &str) -> Option<String> {
    const OPEN: &str = "<|im_start|>system\n";
    let mut rest = jinja;
    while let Some(i) = rest.find(OPEN) {
        let after = &rest[i + OPEN.len()..];
        let end = after.find("<|im_end|>")?;
        let body = &after[..end];
        // A literal (not `' + message['content'] + '`) is the default message; apostrophes
        // inside the literal itself are fine.
        let templated = body.contains("{{") || body.contains("['") || body.contains("' +") || body.contains("+ '");
        if !templated && !body.is_empty() {
            return Some(body.to_string());
        }
        rest = &after[end..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    // SmolLM2-135M-Instruct's template, as its GGUF carries it.
    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_its_default_system_message() {
        let t = ChatTemplate::detect(SMOLLM2).unwrap();
        assert_eq!(
            t.render("What is 2+2?", None),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(
            t.render("hi", Some("Be brief."))
                .starts_with("<|im_start|>system\nBe brief.<|im_end|>")
        );
        assert_eq!(t.end_of_turn(), Some("<|im_end|>"));
    }

    #[test]
    fn a_templated_system_turn_is_not_a_default_message() {
        let t = "{{ '<|im_start|>system\n' + message['content'] + '<|im_end|>' }}";
        assert_eq!(
            ChatTemplate::detect(t),
            Some(ChatTemplate::ChatMl { default_system: None })
        );
        let t = "{{ '<|im_start|>system\nYou're a careful assistant.<|im_end|>\n' }}";
        assert_eq!(
            ChatTemplate::detect(t),
            Some(ChatTemplate::ChatMl {
                default_system: Some("You're a careful assistant.".into())
            })
        );
    }

    #[test]
    fn other_families_and_unknown_templates() {
        assert_eq!(
            ChatTemplate::detect("{{ '<|start_header_id|>' }}"),
            Some(ChatTemplate::Llama3)
        );
        assert_eq!(
            ChatTemplate::detect("{{ '[INST] ' }}").unwrap().render("q", None),
            "[INST] q [/INST]"
        );
        assert_eq!(ChatTemplate::detect("{{ messages }}"), None);
    }
}

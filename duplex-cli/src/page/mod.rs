//! The chat page of `GET /`, embedded at build time.
//!
//! It is one self-contained HTML document when served (no second request,
//! nothing to cache-bust), but its style and script are kept in their own
//! files here, `chat.css` and `chat.js`, so each can be read and linted as
//! what it is; `chat.html` holds the markup with the two placeholders.

use std::sync::OnceLock;

use bytes::Bytes;

const MARKUP: &str = include_str!("chat.html");
const STYLE: &str = include_str!("chat.css");
const SCRIPT: &str = include_str!("chat.js");

/// The whole page, assembled once; each response shares the same bytes.
pub fn chat() -> Bytes {
    static PAGE: OnceLock<Bytes> = OnceLock::new();
    PAGE.get_or_init(|| {
        Bytes::from(
            MARKUP
                .replacen("{{STYLE}}", STYLE.trim_end_matches('\n'), 1)
                .replacen("{{SCRIPT}}", SCRIPT.trim_end_matches('\n'), 1),
        )
    })
    .clone()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_page_is_whole() {
        let page = String::from_utf8(super::chat().to_vec()).unwrap();
        assert!(!page.contains("{{"), "a placeholder is left");
        assert_eq!(page.matches("<style>").count(), 1);
        assert_eq!(page.matches("<script>").count(), 1);
        assert!(page.contains("#member-count"));
        assert!(page.contains("window.duplexChat"));
        assert!(page.trim_end().ends_with("</html>"));
    }
}

//! Reads the `.slack()` property chain out of a TICKscript, so the seed's
//! `.tick` examples run as they are: `.slack().workspace('alerts')
//! .iconEmoji(':fire:')` becomes the options `workspace=alerts`,
//! `iconEmoji=:fire:`. Only that chain is read; the rest of the script is
//! Kapacitor's business.

use anyhow::{bail, Result};

/// The options of the script's `.slack()` handler, or `None` if it has none.
pub fn slack_options(script: &str) -> Result<Option<Vec<(String, String)>>> {
    let code: String = script
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let Some(start) = code.find(".slack()") else {
        return Ok(None);
    };
    let mut rest = &code[start + ".slack()".len()..];
    let mut options = Vec::new();
    loop {
        rest = rest.trim_start();
        let Some(after_dot) = rest.strip_prefix('.') else {
            break;
        };
        let name_len = after_dot
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(after_dot.len());
        let (name, tail) = after_dot.split_at(name_len);
        let Some(tail) = tail.strip_prefix("('") else {
            break;
        };
        let Some(end) = tail.find("')") else {
            bail!("TICKscript: `.{name}(` has no closing `')`");
        };
        options.push((name.to_string(), tail[..end].to_string()));
        rest = &tail[end + 2..];
    }
    Ok(Some(options))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_slack_chain() {
        let script = "stream\n  |alert()\n    .message('Hey')\n    .slack()   \n      .workspace('alerts')\n      .iconEmoji(':fire:')  // why\n\n";
        assert_eq!(
            slack_options(script).unwrap().unwrap(),
            [
                ("workspace".into(), "alerts".into()),
                ("iconEmoji".into(), ":fire:".into())
            ]
        );
    }

    #[test]
    fn no_slack_is_none_and_bare_slack_is_empty() {
        assert_eq!(slack_options("stream |alert().topic('cpu')").unwrap(), None);
        assert_eq!(slack_options("|alert()\n.slack()\n").unwrap(), Some(vec![]));
    }
}

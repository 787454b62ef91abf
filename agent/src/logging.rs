//! The agent's logs (`log`): standard error or a rotating `vigil.log` in `log.dir`; Vigil's layout,
//! JSON, or Patroni's `log.format`; levels per target from `log.loggers`.

use crate::config::{LogConfig, LogLevel, LogType};
use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::writer::BoxMakeWriter;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The name of the log file in `log.dir`; older ones are `vigil.log.1`, `vigil.log.2`, …
pub const LOG_FILE: &str = "vigil.log";

/// The `%(…)` names `log.format` may use.
pub const FORMAT_NAMES: &[&str] =
    &["asctime", "levelname", "name", "module", "message", "process", "thread", "threadName"];

/// `asctime` when `log.dateformat` is left out: Python's own layout.
const DEFAULT_DATEFORMAT: &str = "%Y-%m-%d %H:%M:%S,%3f";

/// Starts logging as `log` says; the `EnvFilter` directives in `VIGIL_LOG`, when it is set and valid, are
/// added after the file's levels (the more specific directive wins, the later on a tie).
pub fn init(log: &LogConfig) -> Result<(), String> {
    let own = std::iter::once(format!("{},openraft=warn", log.level.as_str()))
        .chain(log.loggers.iter().map(|(target, level)| format!("{target}={}", level.as_str())))
        .collect::<Vec<_>>()
        .join(",");
    let with_env = std::env::var("VIGIL_LOG").ok().map(|extra| format!("{own},{extra}"));
    let filter = with_env
        .and_then(|all| tracing_subscriber::EnvFilter::try_new(all).ok())
        .unwrap_or_else(|| tracing_subscriber::EnvFilter::new(own));
    let (writer, terminal) = match &log.dir {
        Some(dir) => {
            let file = RotatingFile::open(dir, log.file_num, log.file_size)
                .map_err(|e| format!("log.dir: cannot open {}: {e}", dir.join(LOG_FILE).display()))?;
            (BoxMakeWriter::new(Mutex::new(file)), false)
        }
        None => (BoxMakeWriter::new(std::io::stderr), std::io::stderr().is_terminal()),
    };
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(writer);
    match (log.kind, &log.format) {
        (LogType::Json, _) => logs.json().init(),
        (LogType::Plain, None) => logs.with_ansi(terminal).init(),
        (LogType::Plain, Some(format)) => {
            let dateformat = log.dateformat.clone().unwrap_or_else(|| DEFAULT_DATEFORMAT.to_string());
            logs.with_ansi(false).event_format(PythonFormat { format: format.clone(), dateformat }).init()
        }
    }
    Ok(())
}

/// Logging for commands without a configuration file: standard error from `level` up.
pub fn init_stderr(level: LogLevel) {
    let log = LogConfig { level, ..LogConfig::default() };
    // Standard error needs no file, so this cannot fail.
    let _ = init(&log);
}

/// The `%(…)` names in `format` that [`FORMAT_NAMES`] does not list.
pub fn unknown_format_names(format: &str) -> Vec<&str> {
    placeholders(format).filter(|(name, _)| !FORMAT_NAMES.contains(name)).map(|(name, _)| name).collect()
}

/// Each `%(name)<conversion>` in `format`: the name and the byte range of the whole placeholder.
fn placeholders(format: &str) -> impl Iterator<Item = (&str, std::ops::Range<usize>)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        let start = from + format[from..].find("%(")?;
        let close = start + 2 + format[start + 2..].find(')')?;
        // The conversion after the name (`s`, `d`, `-8s`, …) ends at its first letter.
        let tail = &format[close + 1..];
        let end = close + 1 + tail.find(|c: char| c.is_ascii_alphabetic()).map_or(0, |i| i + 1);
        from = end;
        Some((&format[start + 2..close], start..end))
    })
}

/// Patroni's `log.format`: Python logging's `%(name)s` placeholders, filled from the event.
struct PythonFormat {
    format: String,
    dateformat: String,
}

impl<S, N> FormatEvent<S, N> for PythonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> std::fmt::Result {
        let meta = event.metadata();
        let mut done = 0;
        for (name, range) in placeholders(&self.format) {
            writer.write_str(&self.format[done..range.start])?;
            match name {
                "asctime" => write!(writer, "{}", chrono::Local::now().format(&self.dateformat))?,
                "levelname" => writer.write_str(python_level(meta.level()))?,
                "name" | "module" => writer.write_str(meta.target())?,
                "message" => ctx.format_fields(writer.by_ref(), event)?,
                "process" => write!(writer, "{}", std::process::id())?,
                _ => writer.write_str(std::thread::current().name().unwrap_or("main"))?,
            }
            done = range.end;
        }
        writer.write_str(&self.format[done..])?;
        writeln!(writer)
    }
}

/// The level as Python's logging names it.
fn python_level(level: &tracing::Level) -> &'static str {
    match *level {
        tracing::Level::ERROR => "ERROR",
        tracing::Level::WARN => "WARNING",
        tracing::Level::INFO => "INFO",
        _ => "DEBUG",
    }
}

/// `vigil.log` in a directory, set aside as `vigil.log.1` (the older ones moving up, at most `keep`
/// kept) when the next line would take it past `max_size` bytes.
struct RotatingFile {
    dir: PathBuf,
    keep: u32,
    max_size: u64,
    file: File,
    size: u64,
}

impl RotatingFile {
    fn open(dir: &Path, keep: u32, max_size: u64) -> std::io::Result<RotatingFile> {
        std::fs::create_dir_all(dir)?;
        let file = append(&dir.join(LOG_FILE))?;
        let size = file.metadata()?.len();
        Ok(RotatingFile { dir: dir.to_path_buf(), keep, max_size, file, size })
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let numbered = |i: u32| self.dir.join(format!("{LOG_FILE}.{i}"));
        for i in (1..self.keep).rev() {
            if numbered(i).exists() {
                std::fs::rename(numbered(i), numbered(i + 1))?;
            }
        }
        let current = self.dir.join(LOG_FILE);
        if self.keep > 0 {
            std::fs::rename(&current, numbered(1))?;
        } else {
            std::fs::remove_file(&current)?;
        }
        self.file = append(&current)?;
        self.size = 0;
        Ok(())
    }
}

fn append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max_size {
            self.rotate()?;
        }
        let written = self.file.write(buf)?;
        self.size += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_found_with_their_conversions() {
        let format = "%(asctime)s %(levelname)-8s: %(message)s [%(oops)d] 100%";
        let found: Vec<_> = placeholders(format).map(|(name, r)| (name, &format[r])).collect();
        assert_eq!(
            found,
            [
                ("asctime", "%(asctime)s"),
                ("levelname", "%(levelname)-8s"),
                ("message", "%(message)s"),
                ("oops", "%(oops)d")
            ]
        );
        assert_eq!(unknown_format_names(format), ["oops"]);
    }

    #[test]
    fn the_file_is_set_aside_when_full_keeping_so_many() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = RotatingFile::open(dir.path(), 2, 10).unwrap();
        for line in ["first\n", "second\n", "third\n", "fourth\n"] {
            file.write_all(line.as_bytes()).unwrap();
        }
        let read = |name: &str| std::fs::read_to_string(dir.path().join(name)).unwrap();
        assert_eq!(read("vigil.log"), "fourth\n");
        assert_eq!(read("vigil.log.1"), "third\n");
        assert_eq!(read("vigil.log.2"), "second\n");
        assert!(!dir.path().join("vigil.log.3").exists(), "only file_num older files are kept");
    }
}

//! A unified diff of two texts, line by line, with three lines of context (as Python's
//! `difflib.unified_diff`, which patronictl shows before changing the configuration). Pure.

/// One line's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Keep(usize, usize),
    Remove(usize),
    Add(usize),
}

const CONTEXT: usize = 3;

/// The unified diff of `before` and `after` (headers `--- before` and `+++ after`); empty when equal.
pub fn unified(before: &str, after: &str) -> String {
    let a: Vec<&str> = before.lines().collect();
    let b: Vec<&str> = after.lines().collect();
    let ops = edit_script(&a, &b);
    if ops.iter().all(|op| matches!(op, Op::Keep(..))) {
        return String::new();
    }
    let mut out = String::from("--- before\n+++ after\n");
    for (start, end) in hunks(&ops) {
        let hunk = &ops[start..end];
        let first_a = hunk.iter().find_map(|op| match op {
            Op::Keep(i, _) | Op::Remove(i) => Some(*i),
            Op::Add(_) => None,
        });
        let first_b = hunk.iter().find_map(|op| match op {
            Op::Keep(_, j) | Op::Add(j) => Some(*j),
            Op::Remove(_) => None,
        });
        let len_a = hunk.iter().filter(|op| !matches!(op, Op::Add(_))).count();
        let len_b = hunk.iter().filter(|op| !matches!(op, Op::Remove(_))).count();
        let start_a = first_a.unwrap_or_else(|| lines_before(&ops[..start], true));
        let start_b = first_b.unwrap_or_else(|| lines_before(&ops[..start], false));
        out += &format!("@@ -{} +{} @@\n", range(start_a, len_a), range(start_b, len_b));
        for op in hunk {
            match *op {
                Op::Keep(i, _) => out += &format!(" {}\n", a[i]),
                Op::Remove(i) => out += &format!("-{}\n", a[i]),
                Op::Add(j) => out += &format!("+{}\n", b[j]),
            }
        }
    }
    out
}

/// How many lines of the old (`old`) or new text come before the ops given.
fn lines_before(ops: &[Op], old: bool) -> usize {
    ops.iter().filter(|op| if old { !matches!(op, Op::Add(_)) } else { !matches!(op, Op::Remove(_)) }).count()
}

/// difflib's range: `start,len` 1-based; `start` alone when len is 1; the line before when empty.
fn range(start: usize, len: usize) -> String {
    match len {
        0 => format!("{start},0"),
        1 => format!("{}", start + 1),
        _ => format!("{},{len}", start + 1),
    }
}

/// The shortest edit script (longest common subsequence by dynamic programming: configurations are small).
fn edit_script(a: &[&str], b: &[&str]) -> Vec<Op> {
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] { lcs[i + 1][j + 1] + 1 } else { lcs[i + 1][j].max(lcs[i][j + 1]) };
        }
    }
    let (mut i, mut j, mut ops) = (0, 0, Vec::new());
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            ops.push(Op::Keep(i, j));
            (i, j) = (i + 1, j + 1);
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            ops.push(Op::Add(j));
            j += 1;
        } else {
            ops.push(Op::Remove(i));
            i += 1;
        }
    }
    // Show removals before additions within a change, as difflib does.
    let mut k = 0;
    while k < ops.len() {
        let end = ops[k..].iter().position(|op| matches!(op, Op::Keep(..))).map_or(ops.len(), |p| k + p);
        ops[k..end].sort_by_key(|op| matches!(op, Op::Add(_)));
        k = end + 1;
    }
    ops
}

/// The hunks: ranges of `ops` around changes, with up to [`CONTEXT`] kept lines on each side, merged
/// when their context would overlap.
fn hunks(ops: &[Op]) -> Vec<(usize, usize)> {
    let changed: Vec<usize> = (0..ops.len()).filter(|&k| !matches!(ops[k], Op::Keep(..))).collect();
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for k in changed {
        let start = k.saturating_sub(CONTEXT);
        let end = (k + 1 + CONTEXT).min(ops.len());
        match hunks.last_mut() {
            Some(last) if start <= last.1 => last.1 = end,
            _ => hunks.push((start, end)),
        }
    }
    hunks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_texts_have_no_diff() {
        assert_eq!(unified("a\nb\n", "a\nb\n"), "");
    }

    #[test]
    fn a_changed_line_with_context() {
        let before = "a\nb\nc\nd\ne\nf\ng\nh\n";
        let after = "a\nb\nc\nd\nE\nf\ng\nh\n";
        let expected = "--- before\n+++ after\n@@ -2,7 +2,7 @@\n b\n c\n d\n-e\n+E\n f\n g\n h\n";
        assert_eq!(unified(before, after), expected);
    }

    #[test]
    fn distant_changes_make_two_hunks_and_additions_at_the_end() {
        let before: String = (1..=12).map(|i| format!("{i}\n")).collect();
        let after = before.replacen("1\n", "one\n", 1) + "13\n";
        let expected = "--- before\n+++ after\n@@ -1,4 +1,4 @@\n-1\n+one\n 2\n 3\n 4\n@@ -10,3 +10,4 @@\n 10\n 11\n 12\n+13\n";
        assert_eq!(unified(&before, &after), expected);
    }

    #[test]
    fn from_and_to_nothing() {
        assert_eq!(unified("", "a\n"), "--- before\n+++ after\n@@ -0,0 +1 @@\n+a\n");
        assert_eq!(unified("a\n", ""), "--- before\n+++ after\n@@ -1 +0,0 @@\n-a\n");
    }
}

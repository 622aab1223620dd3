//! CSV cells that spreadsheets read as data, never as formulas.

use std::borrow::Cow;

/// First characters that make a spreadsheet read a cell as a formula (OWASP,
/// "CSV injection"): `=`, `+`, `-`, `@`, and tab and carriage return, which
/// some spreadsheets skip before looking for one.
const FORMULA_STARTS: &[char] = &['=', '+', '-', '@', '\t', '\r'];

/// `cell` as a spreadsheet should show it: one that would start a formula gets
/// a leading `'`, which spreadsheets read as "text follows" and do not show.
/// The CSV writer then quotes it as it quotes any cell that needs it.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        Cow::Owned(format!("'{cell}"))
    } else {
        Cow::Borrowed(cell)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starts_get_a_quote_and_the_rest_stays_as_it_is() {
        for cell in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(neutralise(cell), format!("'{cell}"));
        }
        for cell in ["", "aleppo", "1", "a=b", "'quoted", " =x"] {
            assert_eq!(neutralise(cell), cell);
        }
    }
}

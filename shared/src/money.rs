//! Money as the normalised model and the reports hold it: an integer count of the currency's minor
//! units with its ISO 4217 code (never a float), read from the providers' decimal text.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Money {
    /// Minor units (cents for USD, yen for JPY, fils for KWD).
    pub minor: i64,
    /// ISO 4217 code; `XXX` ("no currency") when the provider did not name one.
    pub currency: String,
}

/// ISO 4217 minor-unit exponents that are not 2.
pub fn currency_scale(code: &str) -> u32 {
    match code {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// A currency code as sent, if it is three ASCII letters (upper-cased).
pub fn currency_code(s: Option<&str>) -> Option<String> {
    let s = s?.trim();
    (s.len() == 3 && s.bytes().all(|b| b.is_ascii_alphabetic())).then(|| s.to_ascii_uppercase())
}

/// Decimal text (`"362.07"`, `"-5"`, `"12.345"`) to minor units at `scale` decimals, rounding half away
/// from zero. Exponents, separators, non-ASCII digits and overflow give `None`.
pub fn parse_minor(text: &str, scale: u32) -> Option<i64> {
    let t = text.trim();
    let (neg, t) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    let (int, frac) = match t.split_once('.') {
        Some((i, f)) => (i, f),
        None => (t, ""),
    };
    if (int.is_empty() && frac.is_empty()) || !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut v: i128 = 0;
    for b in int.bytes() {
        v = v.checked_mul(10)?.checked_add((b - b'0') as i128)?;
        if v > i64::MAX as i128 {
            return None;
        }
    }
    let fb = frac.as_bytes();
    for i in 0..scale as usize {
        let d = fb.get(i).map(|b| (b - b'0') as i128).unwrap_or(0);
        v = v.checked_mul(10)?.checked_add(d)?;
    }
    if fb.get(scale as usize).is_some_and(|b| *b >= b'5') {
        v += 1;
    }
    let v = if neg { -v } else { v };
    i64::try_from(v).ok()
}

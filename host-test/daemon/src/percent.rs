//! Percent-decoding (`%XX`), for intake's query strings (handler options)
//! and the store's URL (`sslrootcert`).

/// `text` with each `%XX` escape decoded (a `%` not followed by two hex
/// digits is kept as it is); bytes that are not UTF-8 become U+FFFD.
pub(crate) fn decode(text: &str) -> String {
    let hex = |b: u8| (b as char).to_digit(16);
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

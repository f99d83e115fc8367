//! Active Directory's objectGUID: 16 bytes whose first three fields are little-endian
//! (Microsoft's GUID layout), shown as the canonical string `3f2504e0-4f89-11d3-9a0c-…`.

/// The canonical string of a 16-byte objectGUID.
pub fn to_string(b: &[u8]) -> Option<String> {
    let b: &[u8; 16] = b.try_into().ok()?;
    Some(format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
    ))
}

/// The 16 bytes AD stores for a canonical GUID string; `None` when `s` is not one.
pub fn to_bytes(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let dashes_ok = s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        });
    if !dashes_ok || hex.len() != 32 {
        return None;
    }
    let mut p = [0u8; 16];
    for (i, byte) in p.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some([
        p[3], p[2], p[1], p[0], p[5], p[4], p[7], p[6], p[8], p[9], p[10], p[11], p[12], p[13],
        p[14], p[15],
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_endian_round_trip() {
        // the example GUID of Microsoft's documentation and its byte order on the wire
        let s = "3f2504e0-4f89-11d3-9a0c-0305e82c3301";
        let b = to_bytes(s).unwrap();
        assert_eq!(
            b,
            [
                0xe0, 0x04, 0x25, 0x3f, 0x89, 0x4f, 0xd3, 0x11, 0x9a, 0x0c, 0x03, 0x05, 0xe8, 0x2c,
                0x33, 0x01
            ]
        );
        assert_eq!(to_string(&b).unwrap(), s);
        assert_eq!(to_bytes(&s.to_uppercase()).unwrap(), b);
    }

    #[test]
    fn only_guids_parse() {
        assert!(to_bytes("3f2504e0-4f89-11d3-9a0c-0305e82c330").is_none());
        assert!(to_bytes("3f2504e0x4f89-11d3-9a0c-0305e82c3301").is_none());
        assert!(to_bytes("*)(objectClass=*").is_none());
        assert!(to_string(&[1, 2, 3]).is_none());
    }
}

//! Active Directory's objectGUID: 16 bytes whose first three fields are little-endian
//! (Microsoft's GUID layout), shown as the canonical string `3f2504e0-4f89-11d3-9a0c-…`.

use uuid::Uuid;

/// The canonical string of a 16-byte objectGUID.
pub fn to_string(b: &[u8]) -> Option<String> {
    let b: [u8; 16] = b.try_into().ok()?;
    Some(Uuid::from_bytes_le(b).hyphenated().to_string())
}

/// The 16 bytes AD stores for a canonical GUID string; `None` when `s` is not one. Only the
/// hyphenated form (36 characters): `Uuid::try_parse` alone would also take the simple, braced
/// and URN forms, which would give one entry several ids.
pub fn to_bytes(s: &str) -> Option<[u8; 16]> {
    if s.len() != 36 {
        return None;
    }
    Uuid::try_parse(s).ok().map(|u| u.to_bytes_le())
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

//! BER encoding support.
use crate::common::{TagClass, TagStructure};
use crate::structure::{PL, StructureTag};
use bytes::{BufMut, BytesMut};

use std::io;

/// BER-encode a tag structure into the provided buffer.
///
/// Patched for scim2ldap (vendor/README.md): the lengths are computed first and every tag is
/// written straight into `buf`, instead of each constructed tag encoding its contents into a
/// vector of its own that was then copied into its parent's; octets are put into the buffer,
/// not written one `io::Write` call at a time.
pub fn encode_into(buf: &mut BytesMut, tag: StructureTag) -> io::Result<()> {
    // an LDAP request is a few dozen tags: room for them at once, not grown by doubling
    let mut lengths = Vec::with_capacity(32);
    buf.reserve(measure(&tag, &mut lengths));
    encode_inner(buf, &tag, &mut lengths.into_iter());
    Ok(())
}

fn encode_inner(buf: &mut BytesMut, tag: &StructureTag, lengths: &mut impl Iterator<Item = usize>) {
    let structure = match tag.payload {
        PL::P(_) => TagStructure::Primitive,
        PL::C(_) | PL::Encoded(_) => TagStructure::Constructed,
    };

    write_type(buf, tag.class, structure, tag.id);
    write_length(buf, lengths.next().unwrap_or(0));
    match &tag.payload {
        PL::P(v) | PL::Encoded(v) => buf.extend_from_slice(v),
        PL::C(tags) => {
            for tag in tags {
                encode_inner(buf, tag, lengths);
            }
        }
    };
}

/// The length of a tag encoded whole: identifier, length and contents octets. The
/// contents' length of it and of every tag inside it is pushed to `lengths` in the order
/// `encode_inner` writes them, so that each is counted once, not once per enclosing tag.
fn measure(tag: &StructureTag, lengths: &mut Vec<usize>) -> usize {
    let slot = lengths.len();
    lengths.push(0);
    let content = match &tag.payload {
        PL::P(v) | PL::Encoded(v) => v.len(),
        PL::C(tags) => tags.iter().map(|t| measure(t, lengths)).sum(),
    };
    if let Some(l) = lengths.get_mut(slot) {
        *l = content;
    }
    type_len(tag.id) + length_len(content) + content
}

/// The contents of a SEQUENCE OF OCTET STRING holding `items`, encoded into one buffer
/// (for `PL::Encoded`). Patched for scim2ldap (vendor/README.md).
pub fn octet_strings<'a, I>(items: I) -> Vec<u8>
where
    I: IntoIterator<Item = &'a [u8]> + Clone,
{
    let size = items
        .clone()
        .into_iter()
        .map(|item| 1 + length_len(item.len()) + item.len())
        .sum();
    let mut buf = BytesMut::with_capacity(size);
    for item in items {
        write_type(&mut buf, TagClass::Universal, TagStructure::Primitive, 4);
        write_length(&mut buf, item.len());
        buf.extend_from_slice(item);
    }
    buf.into()
}

#[cfg(test)]
fn encoded_len(tag: &StructureTag) -> usize {
    measure(tag, &mut Vec::new())
}

/// Identifier octets: one, or one more for each 7 bits of a tag number above 30.
fn type_len(id: u64) -> usize {
    if id <= 30 {
        return 1;
    }
    let mut n = 1;
    let mut id = id;
    while id > 0 {
        n += 1;
        id >>= 7;
    }
    n
}

/// Length octets: the short form below 128, else a count octet and the length's bytes.
fn length_len(length: usize) -> usize {
    if length < 128 {
        return 1;
    }
    let mut n = 1;
    let mut len = length;
    while len > 0 {
        n += 1;
        len >>= 8;
    }
    n
}

fn write_type(buf: &mut BytesMut, class: TagClass, structure: TagStructure, id: u64) {
    let high = (class as u8) << 6 | (structure as u8) << 5;
    if id <= 30 {
        buf.put_u8(high | id as u8);
        return;
    }
    // tag numbers above 30: 0x1F, then the number in 7-bit groups, high group first, every
    // octet but the last with its top bit set
    buf.put_u8(high | 0x1F);
    let groups = type_len(id) - 1;
    for i in (0..groups).rev() {
        let group = ((id >> (7 * i)) & 0x7F) as u8;
        buf.put_u8(if i > 0 { group | 0x80 } else { group });
    }
}

// Yes I know you could overflow the length in theory. But, do you have 2^64 bytes of memory?
fn write_length(buf: &mut BytesMut, length: usize) {
    if length < 128 {
        buf.put_u8(length as u8);
        return;
    }
    let count = length_len(length) - 1;
    buf.put_u8(count as u8 | 0x80);
    let repr = length.to_be_bytes();
    buf.extend_from_slice(&repr[repr.len() - count..]);
}

#[cfg(test)]
mod tests {
    use std::default::Default;

    use bytes::BytesMut;

    use crate::common::TagClass::*;
    use crate::structures::*;

    #[test]
    fn encode_simple_tag() {
        let tag = Tag::Integer(Integer {
            inner: 1616,
            ..Default::default()
        });

        let mut buf = BytesMut::new();
        super::encode_into(&mut buf, tag.into_structure()).unwrap();

        assert_eq!(buf, vec![0x2, 0x2, 0x06, 0x50]);
    }

    #[test]
    fn encode_constructed_tag() {
        let tag = Tag::Sequence(Sequence {
            inner: vec![Tag::OctetString(OctetString {
                inner: String::from("Hello World!").into_bytes(),
                ..Default::default()
            })],
            ..Default::default()
        });

        let mut buf = BytesMut::new();
        super::encode_into(&mut buf, tag.into_structure()).unwrap();

        assert_eq!(
            buf,
            vec![
                48, 14, 4, 12, 72, 101, 108, 108, 111, 32, 87, 111, 114, 108, 100, 33
            ]
        );
    }

    #[test]
    fn complex_tag() {
        let tag = Tag::Sequence(Sequence {
            inner: vec![
                Tag::Integer(Integer {
                    inner: 1,
                    ..Default::default()
                }),
                Tag::Sequence(Sequence {
                    id: 0,
                    class: Application,
                    inner: vec![
                        Tag::Integer(Integer {
                            inner: 3,
                            ..Default::default()
                        }),
                        Tag::OctetString(OctetString {
                            inner: String::from("cn=root,dc=plabs").into_bytes(),
                            ..Default::default()
                        }),
                        Tag::OctetString(OctetString {
                            id: 0,
                            class: Context,
                            inner: String::from("asdf").into_bytes(),
                        }),
                    ],
                }),
            ],
            ..Default::default()
        });

        let expected = vec![
            0x30, 0x20, 0x02, 0x01, 0x01, 0x60, 0x1B, 0x02, 0x01, 0x03, 0x04, 0x10, 0x63, 0x6e,
            0x3d, 0x72, 0x6f, 0x6f, 0x74, 0x2c, 0x64, 0x63, 0x3d, 0x70, 0x6c, 0x61, 0x62, 0x73,
            0x80, 0x04, 0x61, 0x73, 0x64, 0x66,
        ];

        let mut buf = BytesMut::new();
        super::encode_into(&mut buf, tag.into_structure()).unwrap();

        assert_eq!(buf, expected);
    }

    /// scim2ldap's patch: lengths in the long form, at every depth, encode to what their
    /// length says and parse back to the same tree.
    #[test]
    fn long_lengths_round_trip() {
        use crate::structure::{PL, StructureTag};
        for size in [0usize, 1, 127, 128, 255, 256, 65_535, 65_536] {
            let leaf = StructureTag {
                class: Context,
                id: 5,
                payload: PL::P(vec![7u8; size]),
            };
            let tree = StructureTag {
                class: Universal,
                id: 16,
                payload: PL::C(vec![
                    leaf.clone(),
                    StructureTag {
                        class: Application,
                        id: 3,
                        payload: PL::C(vec![leaf.clone(), leaf]),
                    },
                ]),
            };
            let mut buf = BytesMut::new();
            super::encode_into(&mut buf, tree.clone()).unwrap();
            assert_eq!(buf.len(), super::encoded_len(&tree), "size {size}");
            let mut parser = crate::Parser::new();
            let (rest, parsed) = parser.parse(&buf).unwrap();
            assert!(rest.is_empty(), "size {size}");
            assert_eq!(parsed, tree, "size {size}");
        }
    }

    /// scim2ldap's patch: a sequence of octet strings sent pre-encoded is the same bytes as
    /// the one built tag by tag, short and long lengths alike.
    #[test]
    fn pre_encoded_octet_strings_match_the_tag_tree() {
        use crate::structure::{PL, StructureTag};
        let long = "x".repeat(300);
        for items in [vec![], vec!["cn"], vec!["cn", "", long.as_str(), "mail"]] {
            let tree = Tag::Sequence(Sequence {
                inner: items
                    .iter()
                    .map(|s| {
                        Tag::OctetString(OctetString {
                            inner: s.as_bytes().to_vec(),
                            ..Default::default()
                        })
                    })
                    .collect(),
                ..Default::default()
            })
            .into_structure();
            let pre = StructureTag {
                class: Universal,
                id: 16,
                payload: PL::Encoded(super::octet_strings(items.iter().map(|s| s.as_bytes()))),
            };
            let (mut a, mut b) = (BytesMut::new(), BytesMut::new());
            super::encode_into(&mut a, tree.clone()).unwrap();
            super::encode_into(&mut b, pre).unwrap();
            assert_eq!(a, b, "{items:?}");
            let (_, parsed) = crate::Parser::new().parse(&b).unwrap();
            assert_eq!(parsed, tree);
        }
    }

    /// scim2ldap's patch: tag numbers above 30 take the long form, and their length is
    /// counted (lber's parser does not read them back, so the bytes are compared).
    #[test]
    fn high_tag_numbers_encode_in_the_long_form() {
        use crate::structure::{PL, StructureTag};
        for (id, expected) in [
            (31u64, vec![0x9f, 0x1f, 0x01, 0x2a]),
            (200, vec![0x9f, 0x81, 0x48, 0x01, 0x2a]),
        ] {
            let tag = StructureTag {
                class: Context,
                id,
                payload: PL::P(vec![42]),
            };
            let mut buf = BytesMut::new();
            super::encode_into(&mut buf, tag.clone()).unwrap();
            assert_eq!(buf.to_vec(), expected);
            assert_eq!(super::encoded_len(&tag), expected.len());
        }
    }
}

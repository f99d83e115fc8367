use std::convert::TryFrom;

use crate::common::TagClass;
use crate::common::TagStructure;
use crate::structure::{PL, StructureTag};

use nom;
use nom::error::{Error, ErrorKind, ParseError};
use nom::{IResult, Needed};

// Patched for scim2ldap (vendor/README.md): the identifier and length octets are read by
// hand instead of through nom's bit-level combinators (the same results, errors included:
// an identifier's low five bits are its tag number, as before), and nesting is bounded.

/// How deep constructed tags may nest. LDAP messages nest a few levels; a deeper tree from a
/// server is refused instead of recursed into until the stack overflows.
const MAX_DEPTH: usize = 64;

fn parse_type_header(i: &[u8]) -> nom::IResult<&[u8], (TagClass, TagStructure, u64)> {
    let Some((&octet, rest)) = i.split_first() else {
        return Err(nom::Err::Incomplete(Needed::new(1)));
    };
    let class = TagClass::from_u8(octet >> 6)
        .ok_or_else(|| nom::Err::Error(Error::from_error_kind(i, ErrorKind::MapOpt)))?;
    let structure = TagStructure::from_u8((octet >> 5) & 1)
        .ok_or_else(|| nom::Err::Error(Error::from_error_kind(i, ErrorKind::MapOpt)))?;
    Ok((rest, (class, structure, u64::from(octet & 0x1f))))
}

fn parse_length(i: &[u8]) -> nom::IResult<&[u8], usize> {
    let Some((&len, i)) = i.split_first() else {
        return Err(nom::Err::Incomplete(Needed::new(1)));
    };
    if len < 128 {
        return Ok((i, len as usize));
    }
    let (i, b) = take_exact(i, usize::from(len - 128))?;
    let (_, len) = parse_uint(b)?;
    Ok((
        i,
        usize::try_from(len)
            .map_err(|_| nom::Err::Failure(Error::from_error_kind(i, ErrorKind::TooLarge)))?,
    ))
}

/// The first `n` octets and the rest, or how many more are needed.
fn take_exact(i: &[u8], n: usize) -> nom::IResult<&[u8], &[u8]> {
    if i.len() < n {
        return Err(nom::Err::Incomplete(Needed::new(n - i.len())));
    }
    let (taken, rest) = i.split_at(n);
    Ok((rest, taken))
}

pub fn parse_uint(i: &[u8]) -> nom::IResult<&[u8], u64> {
    Ok((i, i.iter().fold(0, |res, &byte| (res << 8) | byte as u64)))
}

/// Parse raw BER data into a serializable structure.
pub fn parse_tag(i: &[u8]) -> nom::IResult<&[u8], StructureTag> {
    parse_nested(i, 0, &|_, _, _| false)
}

/// `parse_tag`, except that a constructed tag for which `keep(depth, class, id)` answers true
/// keeps its contents encoded (`PL::Encoded`) instead of being parsed into tags: a caller that
/// reads them straight from the bytes (an LDAP client reading search entries) is spared a
/// tree it would take apart again. The top tag is at depth 0. Patched for scim2ldap
/// (vendor/README.md).
pub fn parse_tag_keeping<'a, K>(i: &'a [u8], keep: &K) -> nom::IResult<&'a [u8], StructureTag>
where
    K: Fn(usize, TagClass, u64) -> bool,
{
    parse_nested(i, 0, keep)
}

fn parse_nested<'a, K>(i: &'a [u8], depth: usize, keep: &K) -> nom::IResult<&'a [u8], StructureTag>
where
    K: Fn(usize, TagClass, u64) -> bool,
{
    if depth > MAX_DEPTH {
        return Err(nom::Err::Failure(Error::from_error_kind(i, ErrorKind::TooLarge)));
    }
    let (i, (class, structure, id)) = parse_type_header(i)?;
    let (i, len) = parse_length(i)?;
    let (i, mut content) = take_exact(i, len)?;
    let pl: PL = match structure {
        TagStructure::Primitive => PL::P(content.to_vec()),
        TagStructure::Constructed if keep(depth, class, id) => PL::Encoded(content.to_vec()),
        TagStructure::Constructed => {
            let mut tv: Vec<StructureTag> = Vec::with_capacity(count_tags(content));
            while !content.is_empty() {
                let (j, sub) = parse_nested(content, depth + 1, keep)?;
                content = j;
                tv.push(sub);
            }
            PL::C(tv)
        }
    };
    Ok((
        i,
        StructureTag {
            class,
            id,
            payload: pl,
        },
    ))
}

/// The tags `content` holds, parsed (for `PL::Encoded`); `None` when it is not a whole
/// number of well-formed tags.
pub(crate) fn parse_contents(mut content: &[u8]) -> Option<Vec<StructureTag>> {
    let mut tags = Vec::with_capacity(count_tags(content));
    while !content.is_empty() {
        let (rest, tag) = parse_nested(content, 1, &|_, _, _| false).ok()?;
        content = rest;
        tags.push(tag);
    }
    Some(tags)
}

/// How many tags `content` holds, read from their headers alone, so that the vector holding
/// them is allocated once instead of grown; malformed content stops the count (its parse
/// reports the error).
fn count_tags(mut content: &[u8]) -> usize {
    let mut n = 0;
    while let Ok((i, _)) = parse_type_header(content) {
        let Ok((i, len)) = parse_length(i) else { break };
        let Ok((i, _)) = take_exact(i, len) else { break };
        content = i;
        n += 1;
    }
    n
}

pub struct Parser;

impl Parser {
    pub fn new() -> Self {
        Self
    }

    pub fn parse<'a>(
        &mut self,
        input: &'a [u8],
    ) -> IResult<&'a [u8], StructureTag, nom::error::Error<&'a [u8]>> {
        if input.is_empty() {
            return Err(nom::Err::Incomplete(Needed::Unknown));
        };
        parse_tag(input)
    }
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::common::TagClass;
    use crate::structure::{PL, StructureTag};

    #[test]
    fn test_primitive() {
        let bytes: Vec<u8> = vec![2, 2, 255, 127];
        let result_tag = StructureTag {
            class: TagClass::Universal,
            id: 2u64,
            payload: PL::P(vec![255, 127]),
        };
        let rest_tag: Vec<u8> = vec![];

        let tag = parse_tag(&bytes[..]);

        assert_eq!(tag, Ok((&rest_tag[..], result_tag)));
    }

    #[test]
    fn test_constructed() {
        let bytes: Vec<u8> = vec![
            48, 14, 12, 12, 72, 101, 108, 108, 111, 32, 87, 111, 114, 108, 100, 33,
        ];
        let result_tag = StructureTag {
            class: TagClass::Universal,
            id: 16u64,
            payload: PL::C(vec![StructureTag {
                class: TagClass::Universal,
                id: 12u64,
                payload: PL::P(vec![72, 101, 108, 108, 111, 32, 87, 111, 114, 108, 100, 33]),
            }]),
        };
        let rest_tag: Vec<u8> = vec![];

        let tag = parse_tag(&bytes[..]);

        assert_eq!(tag, Ok((&rest_tag[..], result_tag)));
    }

    #[test]
    fn test_long_length() {
        let bytes: Vec<u8> = vec![
            0x30, 0x82, 0x01, 0x01, 0x80, 0x0C, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E,
            0x67, 0x54, 0x61, 0x67, 0x81, 0x81, 0xF0, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F,
            0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67,
            0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61,
            0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A,
            0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73,
            0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41,
            0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F,
            0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67,
            0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61,
            0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A,
            0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73,
            0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41,
            0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F,
            0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67,
            0x54, 0x61, 0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61,
            0x67, 0x4A, 0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A,
            0x75, 0x73, 0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67, 0x4A, 0x75, 0x73,
            0x74, 0x41, 0x4C, 0x6F, 0x6E, 0x67, 0x54, 0x61, 0x67,
        ];

        let result_tag = StructureTag {
            class: TagClass::Universal,
            id: 16u64,
            payload: PL::C(vec![
                StructureTag {
                    class: TagClass::Context,
                    id: 0,
                    payload: PL::P(vec![74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103]),
                },
                StructureTag {
                    class: TagClass::Context,
                    id: 1,
                    payload: PL::P(vec![
                        74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116,
                        65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110,
                        103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103,
                        74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116,
                        65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110,
                        103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103,
                        74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116,
                        65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110,
                        103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103,
                        74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116,
                        65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110,
                        103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103,
                        74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116,
                        65, 76, 111, 110, 103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110,
                        103, 84, 97, 103, 74, 117, 115, 116, 65, 76, 111, 110, 103, 84, 97, 103,
                    ]),
                },
            ]),
        };

        let rest_tag = Vec::new();

        let tag = parse_tag(&bytes[..]);
        assert_eq!(tag, Ok((&rest_tag[..], result_tag)));
    }

    /// scim2ldap's patch: what the hand-written header reader gives for every identifier
    /// octet, and partial input asks for more.
    #[test]
    fn every_identifier_octet_reads_as_class_structure_and_number() {
        for octet in 0u8..=255 {
            let (_, (class, structure, id)) = parse_type_header(&[octet]).unwrap();
            assert_eq!(class as u8, octet >> 6);
            assert_eq!(structure as u8, (octet >> 5) & 1);
            assert_eq!(id, u64::from(octet & 0x1f));
        }
        assert!(parse_type_header(&[]).unwrap_err().is_incomplete());
        assert!(parse_length(&[]).unwrap_err().is_incomplete());
        assert!(parse_length(&[0x82, 0x01]).unwrap_err().is_incomplete());
        assert!(parse_tag(&[0x04, 0x05, 1, 2]).unwrap_err().is_incomplete());
        assert_eq!(parse_length(&[0x82, 0x01, 0x00, 9]), Ok((&[9u8][..], 256)));
    }

    /// scim2ldap's patch: nesting deeper than MAX_DEPTH is an error, not a stack overflow.
    #[test]
    fn nesting_is_bounded() {
        let nest = |levels: usize| {
            let mut bytes = vec![0x05, 0x00]; // NULL
            for _ in 0..levels {
                let mut outer = vec![0x30];
                let len = bytes.len();
                if len < 128 {
                    outer.push(len as u8);
                } else {
                    outer.extend([0x83, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
                }
                outer.extend(bytes);
                bytes = outer;
            }
            bytes
        };
        assert!(parse_tag(&nest(MAX_DEPTH)).is_ok());
        assert!(matches!(parse_tag(&nest(MAX_DEPTH + 1)), Err(nom::Err::Failure(_))));
        // deep enough to overflow a test thread's stack if it were recursed into
        assert!(matches!(parse_tag(&nest(25_000)), Err(nom::Err::Failure(_))));
    }

    /// scim2ldap's patch: a kept tag's contents stay encoded, and `expect_constructed` gives
    /// the same children the whole parse does; only the tags asked for are kept.
    #[test]
    fn kept_contents_parse_to_the_same_children() {
        // SEQUENCE { INTEGER 7, [APPLICATION 4] { OCTET STRING "dn", SEQUENCE { } }, [APPLICATION 4] primitive }
        let bytes = [
            0x30, 0x0e, 0x02, 0x01, 0x07, 0x64, 0x06, 0x04, 0x02, b'd', b'n', 0x30, 0x00, 0x44,
            0x01, 0x09,
        ];
        let whole = parse_tag(&bytes).unwrap().1;
        let keep = |depth: usize, class: TagClass, id: u64| {
            depth == 1 && class == TagClass::Application && id == 4
        };
        let kept = parse_tag_keeping(&bytes, &keep).unwrap().1;
        let (whole, kept) = (whole.expect_constructed().unwrap(), kept.expect_constructed().unwrap());
        assert_eq!(kept[0], whole[0]);
        assert_eq!(kept[1].payload, PL::Encoded(bytes[7..13].to_vec()));
        assert_eq!(kept[2], whole[2], "a primitive tag is never kept");
        assert_eq!(kept[1].clone().expect_constructed(), whole[1].clone().expect_constructed());
        // contents that do not parse whole are no children
        let broken = StructureTag {
            class: TagClass::Application,
            id: 4,
            payload: PL::Encoded(vec![0x04, 0x05, b'x']),
        };
        assert_eq!(broken.expect_constructed(), None);
    }
}

//! The few BER shapes the pool takes apart itself (search entries, post-read and paged-results
//! control values), read straight from their bytes.
//!
//! lber parses a message into a tree with a vector for every tag, which the pool then took
//! apart again: a GET's entry was about 60 allocations before a value was kept. Reading the
//! bytes in place leaves only the names and values that are kept. Only what LDAP sends is
//! read: tag numbers below 31 and definite lengths (RFC 4511 §5.1); anything else is `None`,
//! never a panic, and every length is checked against the bytes there are.

/// One tag: its identifier octet and its contents.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Tlv<'a> {
    pub ident: u8,
    pub content: &'a [u8],
}

/// The constructed bit of an identifier octet.
const CONSTRUCTED: u8 = 0x20;

impl<'a> Tlv<'a> {
    /// The tag number (low five bits).
    pub fn number(self) -> u8 {
        self.ident & 0x1f
    }

    /// The contents of a constructed tag, as the tags in it.
    pub fn constructed(self) -> Option<Tags<'a>> {
        (self.ident & CONSTRUCTED != 0).then_some(Tags(self.content))
    }

    /// The contents of a primitive tag.
    pub fn primitive(self) -> Option<&'a [u8]> {
        (self.ident & CONSTRUCTED == 0).then_some(self.content)
    }
}

/// One tag from the front of `bytes`, and what follows it.
pub(super) fn read(bytes: &[u8]) -> Option<(Tlv<'_>, &[u8])> {
    let (&ident, rest) = bytes.split_first()?;
    if ident & 0x1f == 0x1f {
        return None; // a tag number above 30: LDAP has none
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // the long form: that many length octets, big-endian; 0x80 (indefinite) is not LDAP
        let count = usize::from(first & 0x7f);
        if count == 0 || count > std::mem::size_of::<usize>() {
            return None;
        }
        let (octets, rest) = rest.split_at_checked(count)?;
        let len = octets
            .iter()
            .fold(0usize, |len, &octet| (len << 8) | usize::from(octet));
        (len, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((Tlv { ident, content }, rest))
}

/// The tags in a constructed tag's contents, one at a time.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tags<'a>(&'a [u8]);

impl<'a> Tags<'a> {
    /// The tags in `content`.
    pub fn of(content: &'a [u8]) -> Self {
        Tags(content)
    }

    /// The contents not read yet, as bytes.
    pub fn whole(self) -> &'a [u8] {
        self.0
    }

    /// How many tags are left; `None` when the rest is not a whole number of tags.
    pub fn count(mut self) -> Option<usize> {
        let mut n = 0;
        while let Some(tag) = self.next_tag() {
            tag?;
            n += 1;
        }
        Some(n)
    }

    /// The next tag; `None` at the end, and `Some(None)` when the rest is not a tag.
    pub fn next_tag(&mut self) -> Option<Option<Tlv<'a>>> {
        if self.0.is_empty() {
            return None;
        }
        Some(read(self.0).map(|(tag, rest)| {
            self.0 = rest;
            tag
        }))
    }

    /// The next tag, which must be there.
    pub fn take(&mut self) -> Option<Tlv<'a>> {
        self.next_tag().flatten()
    }

    /// Whether every tag has been read.
    pub fn is_done(self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_tag_is_read_with_short_and_long_lengths() {
        let (tag, rest) = read(&[0x04, 0x02, b'h', b'i', 0xff]).unwrap();
        assert_eq!(
            (tag.ident, tag.content, rest),
            (0x04, &b"hi"[..], &[0xff][..])
        );
        let long = [&[0x30, 0x82, 0x01, 0x00][..], &[7u8; 256][..]].concat();
        let (tag, rest) = read(&long).unwrap();
        assert_eq!((tag.content.len(), rest.len()), (256, 0));
        assert_eq!(tag.constructed().map(Tags::is_done), Some(false));
        assert_eq!(tag.primitive(), None);
        assert_eq!(tag.number(), 16);
    }

    #[test]
    fn malformed_tags_are_none_not_a_panic() {
        for bad in [
            &[][..],
            &[0x04],                                  // no length
            &[0x04, 0x03, b'a'],                      // shorter than its length
            &[0x04, 0x80, 0x00, 0x00],                // indefinite length
            &[0x04, 0x89, 1, 1, 1, 1, 1, 1, 1, 1, 1], // a length of nine octets
            &[0x04, 0x84, 0xff, 0xff, 0xff, 0xff],    // a length past the bytes
            &[0x1f, 0x81, 0x01, 0x00],                // a tag number above 30
        ] {
            assert_eq!(read(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_tags_in_contents_are_walked_and_a_broken_one_is_reported() {
        let mut tags = Tags(&[0x04, 0x01, b'a', 0x02, 0x01, 0x05]);
        assert_eq!(tags.take().unwrap().content, b"a");
        assert_eq!(tags.take().unwrap().number(), 2);
        assert!(tags.is_done());
        assert_eq!(tags.next_tag(), None);
        let mut broken = Tags(&[0x04, 0x05, b'a']);
        assert_eq!(broken.next_tag(), Some(None));
    }
}

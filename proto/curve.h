/*
 * curve.h - CURVE key pairs and their files: making a key pair with
 * libzmq's zmq_curve_keypair() and writing it, reading it back, and
 * checking Z85 text. The shard (ps/) and every client (ps_client.h) take
 * their keys from here; ZeroMQ's CURVE mechanism (CurveZMQ) then
 * authenticates both ends and encrypts every frame.
 *
 * THE FILES. `funnel-ps keygen --out DIR/NAME` writes two text files:
 *
 *   NAME.key   the key pair; SECRET. Mode 0600, created with O_EXCL (an
 *              existing file is never overwritten or opened by others in
 *              between), never readable by group or others at any moment.
 *                # funnel CURVE key pair: SECRET, keep mode 0600
 *                public-key = <40 Z85 characters>
 *                secret-key = <40 Z85 characters>
 *   NAME.pub   the public half, to hand out (mode 0644).
 *                # funnel CURVE public key
 *                public-key = <40 Z85 characters>
 *
 * Z85 is ZeroMQ's text form of a 32-byte key (RFC 32, 40 characters).
 * Lines starting with '#' and blank lines are ignored when reading;
 * anything else than the lines above is an error naming file:line. A key
 * file that group or others may read is refused (chmod 600 it), and its
 * public key must be the one its secret key gives.
 *
 * Thread-safety: pure functions over files; no shared state.
 */
#ifndef FUNNEL_CURVE_H
#define FUNNEL_CURVE_H

#include "common/err.h"

#define CURVE_Z85_LEN 40 /* characters of a key in Z85 */

/* A key pair as Z85 text (NUL-terminated); sec is empty for a public key. */
typedef struct curve_pair {
    char pub[CURVE_Z85_LEN + 1];
    char sec[CURVE_Z85_LEN + 1];
} curve_pair_t;

/* 1 if the linked libzmq supports CURVE (built with libsodium or tweetnacl). */
int curve_available(void);

/*
 * Make a new key pair and write it as base.key (0600) and base.pub (0644)
 * (base: a path without the extension, e.g. "keys/worker0"). Neither file
 * may exist: ERR_EXISTS naming it. On any error no file is left behind.
 * out (may be NULL) gets the pair. Returns 0, ERR_EXISTS, ERR_IO,
 * ERR_INVAL (CURVE not available, name too long).
 */
int curve_keygen(const char *base, curve_pair_t *out, errbuf_t *eb);

/*
 * Read a key pair file (NAME.key). Returns 0, ERR_IO (cannot read it),
 * ERR_CONFIG (readable by others; a bad line, naming file:line; a public
 * key that does not belong to the secret one; a key missing).
 */
int curve_load_pair(const char *path, curve_pair_t *out, errbuf_t *eb);

/*
 * Read the public key of a NAME.pub (or NAME.key) file into out->pub;
 * out->sec is left empty. Errors as curve_load_pair() (no mode check).
 */
int curve_load_public(const char *path, curve_pair_t *out, errbuf_t *eb);

/* 1 if text (len bytes) is a 40-character Z85 key, else 0. */
int curve_z85_valid(const char *text, size_t len);

/* The Z85 text of a 32-byte key into out (CURVE_Z85_LEN + 1 bytes). */
void curve_z85_encode(char *out, const unsigned char key[32]);

#endif

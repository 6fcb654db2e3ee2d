/* auth.c - see auth.h. OpenSSL's one-shot HMAC() and SHA256(); CRYPTO_memcmp
 * for every comparison so a check does not leak a token through timing. */
#include "auth.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

int dg_auth_token(const char *secret, const char *drone_id, size_t id_len, char out[DG_TOKEN_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)drone_id, id_len,
              mac, &maclen) || maclen != 32)
        return -1;
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < 32; i++) {
        out[2 * i] = hex[mac[i] >> 4];
        out[2 * i + 1] = hex[mac[i] & 15];
    }
    out[DG_TOKEN_LEN] = '\0';
    return 0;
}

bool dg_auth_check(const char *secret, const char *drone_id, size_t id_len,
                   const char *token, size_t token_len)
{
    char want[DG_TOKEN_LEN + 1];
    if (!token || token_len != DG_TOKEN_LEN) return false;
    if (dg_auth_token(secret, drone_id, id_len, want)) return false;
    return CRYPTO_memcmp(want, token, DG_TOKEN_LEN) == 0;
}

bool dg_auth_token_eq(const char *given, size_t given_len, const char *want, size_t want_len)
{
    unsigned char dg[SHA256_DIGEST_LENGTH], dw[SHA256_DIGEST_LENGTH];
    if (!given || !want || want_len == 0) return false;
    if (given_len > DG_OPERATOR_TOKEN_MAX || want_len > DG_OPERATOR_TOKEN_MAX) return false;
    SHA256((const unsigned char *)given, given_len, dg);
    SHA256((const unsigned char *)want, want_len, dw);
    /* both checks always run: no early exit on the length */
    int same = CRYPTO_memcmp(dg, dw, sizeof dg) == 0;
    same &= given_len == want_len;
    return same;
}

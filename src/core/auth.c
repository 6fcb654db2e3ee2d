/* auth.c - see auth.h. OpenSSL's one-shot HMAC(); CRYPTO_memcmp for the
 * comparison so the check does not leak the token through timing. */
#include "auth.h"

#include <string.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

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
    if (token_len != DG_TOKEN_LEN) return false;
    if (dg_auth_token(secret, drone_id, id_len, want)) return false;
    return CRYPTO_memcmp(want, token, DG_TOKEN_LEN) == 0;
}

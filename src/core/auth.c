/* auth.c - see auth.h. OpenSSL's one-shot HMAC() and SHA256(); CRYPTO_memcmp
 * for every comparison so a check does not leak a token through timing. */
#include "auth.h"

#include <arpa/inet.h>
#include <string.h>
#include <strings.h>
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

/* Is s[0..n) one of the comma-separated entries of list (case-insensitive,
 * spaces around entries ignored)? */
static bool list_has(const char *list, const char *s, size_t n)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',') p++;
        const char *b = p;
        while (*p && *p != ',') p++;
        const char *e = p;
        while (e > b && (e[-1] == ' ' || e[-1] == '\t')) e--;
        if ((size_t)(e - b) == n && n && !strncasecmp(b, s, n)) return true;
    }
    return false;
}

bool dg_auth_host_ok(const char *host, const char *listen, const char *allowed)
{
    char name[256];
    size_t n;
    if (!host || !host[0]) return true;
    if (allowed && !strcmp(allowed, "*")) return true;
    if (host[0] == '[') {
        const char *rb = strchr(host, ']');
        if (!rb || (rb[1] && rb[1] != ':')) return false;
        n = (size_t)(rb - host - 1);
        if (n >= sizeof name) return false;
        memcpy(name, host + 1, n);
        name[n] = '\0';
        unsigned char a6[16];
        if (inet_pton(AF_INET6, name, a6) == 1) return true;
        return false;
    }
    const char *colon = strchr(host, ':');
    n = colon ? (size_t)(colon - host) : strlen(host);
    if (n == 0 || n >= sizeof name) return false;
    if (colon) {
        if (!colon[1]) return false;
        for (const char *p = colon + 1; *p; p++) if (*p < '0' || *p > '9') return false;
    }
    memcpy(name, host, n);
    name[n] = '\0';
    for (size_t i = 0; i < n; i++) {   /* a DNS name or an IPv4 address, nothing else */
        char ch = name[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '-' || ch == '_'))
            return false;
    }
    unsigned char a4[4];
    if (inet_pton(AF_INET, name, a4) == 1) return true;
    if (!memchr(name, '.', n)) return true;              /* localhost, a LAN host name */
    if (listen && listen[0]) {                            /* --listen NAME:PORT */
        const char *lc = strrchr(listen, ':');
        size_t ln = lc ? (size_t)(lc - listen) : strlen(listen);
        if (ln == n && !strncasecmp(listen, name, n)) return true;
    }
    if (!allowed) return false;
    return list_has(allowed, name, n) || list_has(allowed, host, strlen(host));
}

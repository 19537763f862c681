#include <crypt.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "keygate/password.h"

#define KG_BCRYPT_HASH_LEN 60

static bool is_bcrypt64(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '/';
}

bool kg_bcrypt_is_valid_hash(const char *h)
{
	if (!h || strlen(h) != KG_BCRYPT_HASH_LEN)
		return false;
	if (h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$')
		return false;
	if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9' || h[6] != '$')
		return false;
	int cost = (h[4] - '0') * 10 + (h[5] - '0');
	if (cost < KG_BCRYPT_MIN_COST || cost > KG_BCRYPT_MAX_COST)
		return false;
	for (int i = 7; i < KG_BCRYPT_HASH_LEN; i++)
		if (!is_bcrypt64(h[i]))
			return false;
	return true;
}

/* crypt_r on a heap crypt_data (it is ~32 KiB), wiped afterwards. */
static atomic_ullong g_hashed; /* bcrypt computations in this process */

uint64_t kg_bcrypt_count(void)
{
	return atomic_load(&g_hashed);
}

static kg_err run_crypt(kg_str plain, const char *setting, char out[KG_BCRYPT_HASH_LEN + 1])
{
	atomic_fetch_add(&g_hashed, 1);
	char *pw = malloc(plain.n + 1);
	struct crypt_data *cd = calloc(1, sizeof(*cd));
	kg_err err = KG_ENOMEM;
	if (!pw || !cd)
		goto out;
	memcpy(pw, plain.p, plain.n);
	pw[plain.n] = '\0';
	const char *h = crypt_r(pw, setting, cd);
	if (!h || h[0] == '*' || strlen(h) != KG_BCRYPT_HASH_LEN) {
		err = KG_EINVAL;
		goto out;
	}
	memcpy(out, h, KG_BCRYPT_HASH_LEN + 1);
	err = KG_OK;
out:
	if (pw) {
		OPENSSL_cleanse(pw, plain.n + 1);
		free(pw);
	}
	if (cd) {
		OPENSSL_cleanse(cd, sizeof(*cd));
		free(cd);
	}
	return err;
}

kg_err kg_bcrypt_hash(kg_str plain, int cost, kg_buf *out)
{
	char salt[CRYPT_GENSALT_OUTPUT_SIZE], hash[KG_BCRYPT_HASH_LEN + 1];
	unsigned char rnd[16];

	if (cost < KG_BCRYPT_MIN_COST || cost > KG_BCRYPT_MAX_COST)
		return KG_ERANGE;
	if (memchr(plain.p, '\0', plain.n))
		return KG_EINVAL;
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return KG_EIO;
	if (!crypt_gensalt_rn("$2b$", (unsigned long)cost, (const char *)rnd, sizeof(rnd), salt, sizeof(salt)))
		return KG_EINVAL;
	kg_err err = run_crypt(plain, salt, hash);
	if (!err)
		err = kg_buf_append(out, hash, KG_BCRYPT_HASH_LEN);
	OPENSSL_cleanse(hash, sizeof(hash));
	return err;
}

kg_err kg_bcrypt_verify(kg_str plain, const char *hash, bool *ok)
{
	char got[KG_BCRYPT_HASH_LEN + 1];
	*ok = false;
	if (!kg_bcrypt_is_valid_hash(hash))
		return KG_EINVAL;
	if (memchr(plain.p, '\0', plain.n))
		return KG_OK; /* cannot match: C strings end there */
	kg_err err = run_crypt(plain, hash, got);
	if (err)
		return err;
	*ok = CRYPTO_memcmp(got, hash, KG_BCRYPT_HASH_LEN) == 0;
	OPENSSL_cleanse(got, sizeof(got));
	return KG_OK;
}

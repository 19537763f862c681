#include "keygate/err.h"

static const char *const messages[] = {
#define KG_X(name, msg) [KG_##name] = msg,
	KG_ERR_LIST(KG_X)
#undef KG_X
};

static const char *const names[] = {
#define KG_X(name, msg) [KG_##name] = #name,
	KG_ERR_LIST(KG_X)
#undef KG_X
};

const char *kg_strerror(kg_err err)
{
	if ((unsigned)err >= KG__ERR_COUNT)
		return "unknown error";
	return messages[err];
}

const char *kg_errname(kg_err err)
{
	if ((unsigned)err >= KG__ERR_COUNT)
		return "EUNKNOWN";
	return names[err];
}

#include <stdio.h>
int main(void) { puts("mtl_prep: not built yet"); return 1; }

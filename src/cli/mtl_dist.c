#include <stdio.h>
int main(void) { puts("mtl_dist: not built yet"); return 1; }

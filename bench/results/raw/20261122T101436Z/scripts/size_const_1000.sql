SELECT size_const_1000();
